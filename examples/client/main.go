// Command client gets a DPoP-bound access token from the demo server
// (examples/server) and calls its API, printing every step: each DPoP proof
// it sends (decoded header and claims), the token responses and the API's
// answers.
//
//	go run ./examples/client                 # client credentials, as "demo"
//	go run ./examples/client -mode code      # authorization code + PKCE + dpop_jkt, as "demo-public"
//	go run ./examples/client -mode fapi -client-id fapi-client -client-key fapi.pem -kid k1
//
// Mode fapi is the FAPI 2.0 flow a server started with -profile fapi2 (or
// without a profile) accepts from a client registered with -jwt-client: the
// client authenticates with private_key_jwt (a dpop.AssertionTransport adds
// a fresh client assertion signed by the key in -client-key to every POST
// to the token and PAR endpoints), pushes its authorization request (PAR,
// RFC 9126) with a DPoP proof that binds the code to its DPoP key, sends
// the user to the authorization endpoint with client_id and request_uri
// only, exchanges the code, calls the API and refreshes. The DPoP key is a
// fresh one, distinct from the client's key. To make a client key and the
// public JWK Set the server registers:
//
//	go run ./examples/client -client-key fapi.pem -kid k1 -jwks > fapi-jwks.json
//	go run ./examples/server -profile fapi2 -jwt-client fapi-client=fapi-jwks.json
//
// -jwks creates the key file (ECDSA P-256, mode 0600) when it is missing;
// -client-key also reads PKCS #8 RSA keys (PS256) and Ed25519 keys (EdDSA).
//
// The proofs are made by a dpop.Signer over a fresh P-256 key and added by a
// dpop.Transport, which also binds them to the access token (ath) and
// follows use_dpop_nonce challenges, so servers started with -require-nonce
// need nothing more. In code mode the end user's login (alice / wonderland,
// HTTP Basic) is done here too, so that the flow runs unattended: the
// redirect to the callback is read, not followed.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/dpopkit/dpop"
)

// The demo's clients and user (see examples/server).
const (
	confidentialID     = "demo"
	confidentialSecret = "demo-secret"
	publicID           = "demo-public"
	redirectURI        = "http://127.0.0.1:8765/callback"
	user, password     = "alice", "wonderland"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "client: FAILED:", err)
		os.Exit(1)
	}
}

func run(args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(errOut)
	issuer := fs.String("issuer", "http://127.0.0.1:8080", "base `URL` of the demo server")
	mode := fs.String("mode", "cc", "`flow`: cc (client credentials, confidential client demo), code (authorization code with PKCE and dpop_jkt, public client demo-public) or fapi (FAPI 2.0: private_key_jwt, PAR with a DPoP proof, authorization code with PKCE, refresh; needs -client-id and -client-key)")
	clientID := fs.String("client-id", "", "client `id` registered with the server's -jwt-client, for -mode fapi")
	clientKey := fs.String("client-key", "", "PEM `file` of the client's private key (PKCS #8: ECDSA P-256 for ES256, RSA for PS256, Ed25519 for EdDSA), whose public key is in the JWK Set the server registered; for -mode fapi and -jwks")
	kid := fs.String("kid", "", "key `id` of the client key in its JWK Set, sent in the assertions' header (and written by -jwks)")
	printJWKS := fs.Bool("jwks", false, "print the public JWK Set of -client-key (created, ECDSA P-256, mode 0600, when missing) for the server's -jwt-client ID=FILE, and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	base := strings.TrimSuffix(*issuer, "/")
	if *printJWKS {
		if *clientKey == "" {
			return errors.New("-jwks needs -client-key")
		}
		return writeJWKS(out, *clientKey, *kid)
	}
	var assertions *dpop.Signer
	if *mode == "fapi" {
		if *clientID == "" || *clientKey == "" {
			return errors.New("-mode fapi needs -client-id and -client-key")
		}
		key, err := readClientKey(*clientKey)
		if err != nil {
			return err
		}
		if assertions, err = dpop.NewSigner(key, dpop.SignerOptions{}); err != nil {
			return fmt.Errorf("%s: %w", *clientKey, err)
		}
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	signer, err := dpop.NewSigner(key, dpop.SignerOptions{})
	if err != nil {
		return err
	}
	c := &client{
		out:    out,
		base:   base,
		signer: signer,
		// The dpop.Transport signs every request; showProofs, beneath it,
		// prints each proof as it goes out, retries included.
		http: &http.Client{
			Transport: dpop.NewTransport(signer, &showProofs{out: out, next: http.DefaultTransport}),
			Timeout:   30 * time.Second,
			// Never follow redirects with a proof attached.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if assertions != nil {
		// private_key_jwt: a fresh assertion (aud the issuer, as a string)
		// on every POST to the token and PAR endpoints, beneath the DPoP
		// transport so that a retry after use_dpop_nonce gets a new one.
		c.clientID = *clientID
		c.http.Transport = dpop.NewTransport(signer, &dpop.AssertionTransport{
			Signer:    assertions,
			Options:   dpop.AssertionOptions{ClientID: *clientID, Audience: base, KeyID: *kid},
			TokenURLs: []string{base + "/oauth2/token", base + "/oauth2/par"},
			Base:      &showProofs{out: out, next: http.DefaultTransport},
		})
		c.step("client %q authenticates with private_key_jwt: %s key, jkt %s", *clientID, assertions.Algorithm(), assertions.JKT())
	}
	c.step("new DPoP key (ES256), jkt %s", signer.JKT())

	ctx := context.Background()
	switch *mode {
	case "cc":
		err = c.clientCredentials(ctx)
	case "code":
		err = c.authorizationCode(ctx)
	case "fapi":
		err = c.fapi(ctx)
	default:
		return fmt.Errorf("-mode must be cc, code or fapi, not %q", *mode)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nSUCCESS: %s flow done; the API accepted the DPoP-bound token\n", *mode)
	return nil
}

// client runs the flows against one server.
type client struct {
	out    io.Writer
	base   string
	signer *dpop.Signer
	http   *http.Client
	steps  int
	// clientID is the private_key_jwt client of -mode fapi.
	clientID string
}

// tokenResponse is a successful token response (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// hello is the demo API's answer.
type hello struct {
	Sub      string `json:"sub"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	JKT      string `json:"jkt"`
}

func (c *client) step(format string, args ...any) {
	c.steps++
	fmt.Fprintf(c.out, "\n== %d. %s\n", c.steps, fmt.Sprintf(format, args...))
}

func (c *client) clientCredentials(ctx context.Context) error {
	c.step("token request: client_credentials as %q", confidentialID)
	tok, err := c.token(ctx, url.Values{"grant_type": {"client_credentials"}}, confidentialID, confidentialSecret)
	if err != nil {
		return err
	}
	return c.callAPI(ctx, tok.AccessToken, confidentialID, confidentialID)
}

func (c *client) authorizationCode(ctx context.Context) error {
	verifier := randomString()
	state := randomString()
	sum := sha256Base64URL(verifier)
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {publicID},
		"redirect_uri":          {redirectURI},
		"scope":                 {"read write"},
		"state":                 {state},
		"code_challenge":        {sum},
		"code_challenge_method": {"S256"},
		// The code can only be redeemed with a proof of this key (RFC 9449 §10).
		"dpop_jkt": {c.signer.JKT()},
	}
	authURL := c.base + "/oauth2/authorize?" + q.Encode()
	c.step("authorization request as %q, logging in as %s (HTTP Basic)\nGET %s", publicID, user, authURL)
	code, err := c.authorize(ctx, authURL, state)
	if err != nil {
		return err
	}

	c.step("token request: authorization_code with the PKCE code_verifier")
	tok, err := c.token(ctx, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"client_id":     {publicID},
		"code_verifier": {verifier},
	}, "", "")
	if err != nil {
		return err
	}
	if tok.RefreshToken == "" {
		return errors.New("the token response has no refresh_token")
	}
	if err := c.callAPI(ctx, tok.AccessToken, user, publicID); err != nil {
		return err
	}

	// A public client's refresh token is bound to its DPoP key too: the
	// refresh must be proven with the same key.
	c.step("token request: refresh_token")
	next, err := c.token(ctx, url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {tok.RefreshToken},
		"client_id":     {publicID},
	}, "", "")
	if err != nil {
		return err
	}
	if next.AccessToken == tok.AccessToken {
		return errors.New("the refresh returned the same access token")
	}
	return c.callAPI(ctx, next.AccessToken, user, publicID)
}

// authorize sends the authorization request with the user's credentials and
// reads the code from the redirect, without following it: the callback is
// the client's own address, which nothing serves here. The redirect is 302
// or 303 (FAPI 2.0 servers answer 303, which a browser follows with GET).
func (c *client) authorize(ctx context.Context, authURL, state string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(user, password)
	// The authorization endpoint is a browser's business: no DPoP proof.
	browser := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := browser.Do(req)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("authorization endpoint answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	loc := resp.Header.Get("Location")
	fmt.Fprintf(c.out, "%s\nLocation: %s\n", resp.Status, loc)
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("redirect: %w", err)
	}
	if u.Scheme+"://"+u.Host+u.Path != redirectURI {
		return "", fmt.Errorf("redirected to %q, not the registered redirect URI", loc)
	}
	p := u.Query()
	if e := p.Get("error"); e != "" {
		return "", fmt.Errorf("authorization refused: %s: %s", e, p.Get("error_description"))
	}
	// state ties the response to this request (RFC 6749 §10.12); iss names
	// the server that answered (RFC 9207), against mix-up attacks.
	if p.Get("state") != state {
		return "", errors.New("the redirect's state is not the one sent")
	}
	if p.Get("iss") != c.base {
		return "", fmt.Errorf("the redirect's iss is %q, want %q", p.Get("iss"), c.base)
	}
	code := p.Get("code")
	if code == "" {
		return "", errors.New("the redirect carries no code")
	}
	fmt.Fprintln(c.out, "state and iss match; got a code")
	return code, nil
}

// token posts a token request, with HTTP Basic when secret is set.
func (c *client) token(ctx context.Context, form url.Values, id, secret string) (*tokenResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(id, secret)
	}
	fmt.Fprintf(c.out, "POST %s  grant_type=%s\n", req.URL, form.Get("grant_type"))
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c.out, "token response: %s\n%s\n", resp.Status, indent(body))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("token endpoint answered %s", resp.Status)
	}
	var tok tokenResponse
	if err := json.Unmarshal(body, &tok); err != nil {
		return nil, fmt.Errorf("token response: %w", err)
	}
	if tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "DPoP") {
		return nil, fmt.Errorf("want a DPoP access token, got token_type %q", tok.TokenType)
	}
	return &tok, nil
}

// callAPI calls GET /api/hello with the token and checks who it says we are.
func (c *client) callAPI(ctx context.Context, token, wantSub, wantClient string) error {
	c.step("API call with the token: GET /api/hello")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/hello", nil)
	if err != nil {
		return err
	}
	// The Transport sees the DPoP scheme and adds ath to the proof.
	req.Header.Set("Authorization", "DPoP "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "API response: %s\n%s\n", resp.Status, indent(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("API answered %s (WWW-Authenticate: %s)", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	var h hello
	if err := json.Unmarshal(body, &h); err != nil {
		return fmt.Errorf("API response: %w", err)
	}
	if h.Sub != wantSub || h.ClientID != wantClient || h.JKT != c.signer.JKT() {
		return fmt.Errorf("API saw sub %q, client %q, jkt %q; want %q, %q, %q", h.Sub, h.ClientID, h.JKT, wantSub, wantClient, c.signer.JKT())
	}
	return nil
}

// showProofs prints the DPoP proof of every request it carries.
type showProofs struct {
	out  io.Writer
	next http.RoundTripper
}

func (s *showProofs) RoundTrip(req *http.Request) (*http.Response, error) {
	if p := req.Header.Get("DPoP"); p != "" {
		fmt.Fprintf(s.out, "DPoP proof for %s %s:\n%s\n", req.Method, req.URL, decodeProof(p))
	}
	// A client assertion (private_key_jwt, -mode fapi) is in the form body.
	if req.Body != nil && strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		body, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		if f, err := url.ParseQuery(string(body)); err == nil && f.Get("client_assertion") != "" {
			fmt.Fprintf(s.out, "client assertion (private_key_jwt) for %s %s:\n%s\n", req.Method, req.URL, decodeProof(f.Get("client_assertion")))
		}
	}
	resp, err := s.next.RoundTrip(req)
	if err == nil && resp.Header.Get("DPoP-Nonce") != "" {
		fmt.Fprintf(s.out, "server sent DPoP-Nonce (%s)\n", resp.Status)
	}
	return resp, err
}

// decodeProof shows a proof JWT's header and claims, indented.
func decodeProof(p string) string {
	parts := strings.Split(p, ".")
	if len(parts) != 3 {
		return "  (not a JWS)"
	}
	var b strings.Builder
	for i, name := range []string{"header", "claims"} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return "  (undecodable)"
		}
		fmt.Fprintf(&b, "  %s: %s\n", name, raw)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// indent pretty-prints JSON, or returns the text as it is.
func indent(body []byte) string {
	var b bytes.Buffer
	body = bytes.TrimSpace(body)
	if json.Indent(&b, body, "  ", "  ") != nil {
		return "  " + string(body)
	}
	return "  " + b.String()
}

// sha256Base64URL is the S256 code_challenge of a code_verifier (RFC 7636 §4.2).
func sha256Base64URL(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// randomString is 256 random bits, base64url: the PKCE code_verifier
// (RFC 7636 §4.1) and the state.
func randomString() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
