package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/dpopkit/dpop"
)

const authorizePath = "/oauth2/authorize"

// endpoints are the demo server's URLs: where requests go (base) and what
// proofs name (issuer, the public base URL).
type endpoints struct {
	base, issuer string
}

func newEndpoints(rawURL, issuer string) (endpoints, error) {
	base := strings.TrimSuffix(rawURL, "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return endpoints{}, fmt.Errorf("%q is not an http(s) base URL", rawURL)
	}
	issuer = strings.TrimSuffix(issuer, "/")
	if issuer == "" {
		issuer = base
	}
	return endpoints{base: base, issuer: issuer}, nil
}

// credentials are the demo's registrations a party acts with.
type credentials struct {
	clientID, clientSecret string // the confidential client
	publicID               string // the public client
	user, password         string // its end user
	redirectURI            string
}

// demoCredentials are examples/server's registrations.
var demoCredentials = credentials{
	clientID: "demo", clientSecret: "demo-secret", publicID: "demo-public",
	user: "alice", password: "wonderland", redirectURI: "http://127.0.0.1:8765/callback",
}

// party is one DPoP client instance: its key, its connections, and the
// latest server nonce of each endpoint. A party is used by one goroutine at
// a time; several parties may share a signer and an HTTP client.
type party struct {
	ep     endpoints
	cred   credentials
	hc     *http.Client
	signer *dpop.Signer
	nonces map[string]string // htu -> the nonce proofs to it carry
}

func newParty(ep endpoints, cred credentials, hc *http.Client, s *dpop.Signer) *party {
	return &party{ep: ep, cred: cred, hc: hc, signer: s, nonces: map[string]string{}}
}

// newSigner is an ES256 signer over a fresh key.
func newSigner() (*dpop.Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return dpop.NewSigner(k, dpop.SignerOptions{})
}

// fork is another party with the same key and connections and nonces of its
// own, for another goroutine.
func (p *party) fork() *party { return newParty(p.ep, p.cred, p.hc, p.signer) }

// send sends rq once, with a fresh proof carrying the nonce last learnt for
// its endpoint, and learns the nonce the answer offers: an attacker's
// request, which does not retry.
func (p *party) send(ctx context.Context, rq request) (reply, error) {
	proof, err := p.signer.Proof(rq.method, rq.htu, dpop.ProofOptions{AccessToken: rq.token, Nonce: p.nonces[rq.htu]})
	if err != nil {
		return reply{}, err
	}
	r, err := rq.send(ctx, p.hc, proof)
	if err == nil {
		if n := r.header.Get("DPoP-Nonce"); n != "" {
			p.nonces[rq.htu] = n
		}
	}
	return r, err
}

// call is a well-behaved client's request: a fresh proof with the nonce
// last learnt, retried once with a new nonce when the server answers
// use_dpop_nonce.
func (p *party) call(ctx context.Context, rq request) (reply, bool, error) {
	r, next, retried, err := rq.call(ctx, p.hc, p.signer, p.nonces[rq.htu])
	if next != "" {
		p.nonces[rq.htu] = next
	}
	return r, retried, err
}

// The requests of the demo's flows.

func (p *party) tokenRequest(form url.Values, auth string) request {
	return request{method: http.MethodPost, url: p.ep.base + tokenPath, htu: p.ep.issuer + tokenPath, form: form.Encode(), auth: auth, keepBody: true}
}

// clientCredentials asks for a token as the confidential client.
func (p *party) clientCredentials() request {
	return p.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, basicAuth(p.cred.clientID, p.cred.clientSecret))
}

// exchangeCode redeems a code of the public client (RFC 6749 §4.1.3, RFC
// 7636 §4.5).
func (p *party) exchangeCode(code, verifier string) request {
	return p.tokenRequest(url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {p.cred.redirectURI},
		"client_id": {p.cred.publicID}, "code_verifier": {verifier},
	}, "")
}

// refresh uses a refresh token of the public client.
func (p *party) refresh(token string) request {
	return p.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {p.cred.publicID}}, "")
}

// api calls GET /api/hello with an access token.
func (p *party) api(token string) request {
	return request{method: http.MethodGet, url: p.ep.base + apiPath, htu: p.ep.issuer + apiPath, auth: "DPoP " + token, token: token}
}

// authorization is a pending authorization request of the public client.
type authorization struct {
	verifier, state string
}

// authorize is the end user's visit to the authorization endpoint (HTTP
// Basic, consent implied, as the demo does it), with PKCE S256 and the
// party's key in dpop_jkt (RFC 9449 §10). The answer is a redirect to the
// callback carrying the code; codeOf reads it.
func (p *party) authorize() (request, authorization) {
	a := authorization{verifier: randomString(32), state: randomString(12)}
	sum := sha256.Sum256([]byte(a.verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {p.cred.publicID}, "redirect_uri": {p.cred.redirectURI},
		"scope": {"read"}, "state": {a.state}, "code_challenge": {b64url.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}, "dpop_jkt": {p.signer.JKT()},
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.cred.user+":"+p.cred.password))
	return request{method: http.MethodGet, url: p.ep.base + authorizePath + "?" + q.Encode(), auth: auth}, a
}

// codeOf reads the code from the authorization endpoint's redirect.
func (a authorization) codeOf(r reply) (string, error) {
	if r.status != http.StatusFound && r.status != http.StatusSeeOther {
		return "", fmt.Errorf("authorization request: %d %s", r.status, strings.TrimSpace(string(r.body)))
	}
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		return "", fmt.Errorf("authorization request: redirect to %q", r.header.Get("Location"))
	}
	q := loc.Query()
	if q.Get("state") != a.state || q.Get("code") == "" {
		return "", fmt.Errorf("authorization request: redirect without the code: %s", loc.RawQuery)
	}
	return q.Get("code"), nil
}

// codeFlow runs the public client's authorization code flow as its user:
// authorization, then the code exchange. It returns the tokens.
func (p *party) codeFlow(ctx context.Context) (tokenResponse, error) {
	rq, a := p.authorize()
	r, err := rq.send(ctx, p.hc, "")
	if err != nil {
		return tokenResponse{}, err
	}
	code, err := a.codeOf(r)
	if err != nil {
		return tokenResponse{}, err
	}
	r, _, err = p.call(ctx, p.exchangeCode(code, a.verifier))
	if err != nil {
		return tokenResponse{}, err
	}
	return tokenOf("code exchange", r)
}

// tokenOf reads a successful token response.
func tokenOf(what string, r reply) (tokenResponse, error) {
	if r.status != http.StatusOK {
		return tokenResponse{}, fmt.Errorf("%s: %d %s", what, r.status, strings.TrimSpace(string(r.body)))
	}
	return parseTokenReply(r)
}

// randomString is n random bytes, base64url: unreserved characters only.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return b64url.EncodeToString(b)
}

// errorCode is the OAuth error code of a refusal's JSON body, if any.
func errorCode(r reply) string {
	if r.status == http.StatusOK {
		return ""
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(r.body, &e) == nil {
		return e.Error
	}
	return ""
}
