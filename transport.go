package dpop

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Limits of a Transport.
const (
	// transportNonceOrigins is how many origins a Transport remembers a
	// DPoP-Nonce for; the least recently used origin is forgotten first.
	transportNonceOrigins = 256
	// maxNonceLength bounds a DPoP-Nonce value the Transport accepts.
	maxNonceLength = 1024
	// maxErrorBodyBytes bounds how much of a 400 response is read to look for
	// a use_dpop_nonce error (RFC 9449 §8).
	maxErrorBodyBytes = 64 << 10
	// maxDrainBytes bounds how much of a response that is retried is read
	// before it is closed, so that its connection can be reused.
	maxDrainBytes = 4 << 10
	// maxRedirectChain bounds how many redirects back RoundTrip looks for
	// the first request of a chain; a longer chain counts as leaving the
	// origin. http.Client stops after 10 by default.
	maxRedirectChain = 64
)

// Transport is an [http.RoundTripper] that adds a DPoP proof, made by Signer,
// to every request (RFC 9449 §4.1, §7.1). When the request carries an
// `Authorization: DPoP <token>` header, as golang.org/x/oauth2 writes for a
// token of type DPoP, the proof is bound to that token with ath (RFC 9449
// §4.2, §7). The latest DPoP-Nonce a server sent is remembered per origin and
// put in later proofs to it (RFC 9449 §8.2), and a use_dpop_nonce challenge
// from an authorization server (RFC 9449 §8) or a resource server (RFC 9449
// §9) is retried once with the new nonce, when the request body can be
// replayed.
//
// # Redirects
//
// An access token is sent only to the origin it was meant for (RFC 9449 §7;
// a client must not leak a token to parties it was not meant for, RFC 6750
// §5.3, RFC 9700 §4.9). That origin is the one of the request the token was
// put on: when an [http.Client] follows a redirect, the request it passes to
// RoundTrip carries the redirect response (Request.Response) and, through
// it, the requests before; the Transport compares the origin of the new
// request with that of the first request of the chain, as scheme, lower-case
// host and port, a default port (80 for http, 443 for https) counting as
// absent. When they differ, the request is sent without any Authorization
// header and with a proof that has no ath, exactly as if the caller had sent
// it without a token. This is stricter than http.Client, which keeps
// Authorization headers set on the first request when only the port or the
// scheme changes, or the new host is a subdomain, and it also covers a token
// that a RoundTripper in front of the Transport (such as the one of
// golang.org/x/oauth2) adds again to every request. Redirects within the
// origin keep the token. A request that is not a redirect carries whatever
// token the caller put on it: the Transport does not pin a token to the first
// origin it saw, so one Transport can serve several resource servers.
//
// RoundTrip never modifies the caller's request. The zero value with Signer
// set is ready to use; a Transport is safe for concurrent use and must not be
// copied after first use.
type Transport struct {
	// Signer makes the proofs. RoundTrip fails without it.
	Signer *Signer
	// Base sends the requests. Default http.DefaultTransport.
	Base http.RoundTripper

	mu     sync.Mutex
	nonces *simplelru.LRU[string, string] // origin -> latest nonce; created lazily
}

// NewTransport returns a Transport that signs with s and sends through base
// (http.DefaultTransport when nil), as described in RFC 9449 §7.1.
func NewTransport(s *Signer, base http.RoundTripper) *Transport {
	return &Transport{Signer: s, Base: base}
}

// RoundTrip implements [http.RoundTripper]: it sends a copy of req with a
// DPoP header (RFC 9449 §4.1) and, if the server answers with a
// use_dpop_nonce error and a DPoP-Nonce header (RFC 9449 §8, §9), sends it
// once more with a proof carrying that nonce. The retry needs a body that can
// be replayed: none, http.NoBody, or one that req.GetBody recreates;
// otherwise the first response is returned as it is. A redirected request to
// another origin than the first of its chain goes out without its
// Authorization header (see [Transport]).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Signer == nil {
		closeRequestBody(req)
		return nil, errors.New("dpop: Transport has no Signer")
	}
	if req.URL == nil {
		closeRequestBody(req)
		return nil, errors.New("dpop: request has no URL")
	}
	origin := nonceOrigin(req.URL)
	if req.Response != nil && !sameOriginAsFirst(req, origin) {
		// The token was meant for the origin that the chain of redirects
		// started at. Go on without it rather than fail: the caller then sees
		// what the new origin answers to a request without credentials, as
		// http.Client does when it drops Authorization across hosts, and
		// public resources behind a redirect keep working.
		req = withoutAuthorization(req)
	}
	opts := ProofOptions{AccessToken: dpopAccessToken(req.Header), Nonce: t.nonceFor(origin)}

	resp, err := t.send(req, req.Body, opts)
	if err != nil {
		return nil, err
	}
	nonce := t.learnNonce(origin, resp)
	if nonce == "" || !replayableBody(req) || !asksForNonce(resp) {
		return resp, nil
	}
	body := req.Body
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		if body, err = req.GetBody(); err != nil {
			// Without a fresh body there is no retry; the caller still gets
			// the server's answer.
			return resp, nil
		}
	}
	drainAndClose(resp.Body)
	opts.Nonce = nonce
	resp, err = t.send(req, body, opts)
	if err != nil {
		return nil, err
	}
	t.learnNonce(origin, resp)
	return resp, nil
}

// send clones req with body, adds a fresh proof and passes the clone to the
// base transport, which then owns body. If no proof can be made, body is
// closed here.
func (t *Transport) send(req *http.Request, body io.ReadCloser, opts ProofOptions) (*http.Response, error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	proof, err := t.Signer.proof(method, req.URL, opts)
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Body = body
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	for k := range r.Header {
		if strings.EqualFold(k, "DPoP") {
			delete(r.Header, k)
		}
	}
	r.Header.Set("DPoP", proof)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return nil, errors.New("dpop: base transport returned no response")
	}
	if resp.Request == nil {
		// http.Transport sets it; a bare RoundTripper may not. A redirect
		// that follows needs it to find the origin of the chain.
		resp.Request = r
	}
	return resp, nil
}

// sameOriginAsFirst reports whether origin is the origin of the first request
// of the redirect chain that req, made by an http.Client following a
// redirect, belongs to. A chain that cannot be followed back to its start
// counts as another origin.
func sameOriginAsFirst(req *http.Request, origin string) bool {
	r := req
	for range maxRedirectChain {
		if r.Response == nil {
			return nonceOrigin(r.URL) == origin
		}
		if r = r.Response.Request; r == nil || r.URL == nil {
			return false
		}
	}
	return false
}

// withoutAuthorization returns a copy of req without Authorization header
// fields; req itself is left as it is.
func withoutAuthorization(req *http.Request) *http.Request {
	r := req.Clone(req.Context())
	for k := range r.Header {
		if strings.EqualFold(k, "Authorization") {
			delete(r.Header, k)
		}
	}
	return r
}

// nonceFor returns the nonce last learned from origin, or "".
func (t *Transport) nonceFor(origin string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nonces == nil {
		return ""
	}
	n, _ := t.nonces.Get(origin)
	return n
}

// learnNonce remembers the DPoP-Nonce of resp for origin (RFC 9449 §8.2) and
// returns it, or returns "" when resp has no acceptable nonce.
func (t *Transport) learnNonce(origin string, resp *http.Response) string {
	n := resp.Header.Get("DPoP-Nonce")
	if !validNonce(n) {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nonces == nil {
		l, err := simplelru.NewLRU[string, string](transportNonceOrigins, nil)
		if err != nil {
			return ""
		}
		t.nonces = l
	}
	t.nonces.Add(origin, n)
	return n
}

// validNonce reports whether n is a nonce the Transport will send: 1 to
// maxNonceLength NQCHARs (RFC 9449 §8.1), visible ASCII but '"' and '\'.
func validNonce(n string) bool {
	if n == "" || len(n) > maxNonceLength {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// nonceOrigin returns the origin (RFC 6454 §4) that nonces are remembered
// for, and that an access token is sent to after a redirect: lower-case
// scheme://host[:port], without a default port.
func nonceOrigin(u *url.URL) string {
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	host = strings.TrimSuffix(host, ":")
	switch scheme {
	case "https":
		host = strings.TrimSuffix(host, ":443")
	case "http":
		host = strings.TrimSuffix(host, ":80")
	}
	return scheme + "://" + host
}

// dpopAccessToken returns the access token of an `Authorization: DPoP
// <token>` header (RFC 9449 §7.1), the scheme compared without regard to
// case, or "" for any other Authorization.
func dpopAccessToken(h http.Header) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "DPoP") {
		return ""
	}
	return strings.TrimSpace(token)
}

// replayableBody reports whether req can be sent again: it has no body or
// GetBody recreates it.
func replayableBody(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// asksForNonce reports whether resp is a use_dpop_nonce error: a 400 whose
// JSON body has that error code (RFC 9449 §8), or a 401 with a DPoP
// challenge carrying it (RFC 9449 §9). For a 400 it reads at most
// maxErrorBodyBytes of the body and puts them back in front of the rest.
func asksForNonce(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return hasUseNonceChallenge(resp.Header.Values("WWW-Authenticate"))
	case http.StatusBadRequest:
		if resp.Body == nil || resp.Body == http.NoBody {
			return false
		}
		orig := resp.Body
		head, _ := io.ReadAll(io.LimitReader(orig, maxErrorBodyBytes))
		resp.Body = prefixedBody{io.MultiReader(bytes.NewReader(head), orig), orig}
		return isUseNonceError(head)
	}
	return false
}

// prefixedBody is a response body that replays bytes already read before the
// rest; Close closes the original body.
type prefixedBody struct {
	io.Reader
	io.Closer
}

// isUseNonceError reports whether body is a JSON object whose "error" member
// is use_dpop_nonce (RFC 6749 §5.2, RFC 9449 §8). Member names are matched
// exactly.
func isUseNonceError(body []byte) bool {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return false
	}
	var code string
	if raw, ok := obj["error"]; !ok || json.Unmarshal(raw, &code) != nil {
		return false
	}
	return code == string(CodeUseNonce)
}

// closeRequestBody closes req.Body, as a RoundTripper must on every path.
func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// drainAndClose reads a little of body, so that its connection can be
// reused, and closes it.
func drainAndClose(body io.ReadCloser) {
	if body == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, body, maxDrainBytes)
	body.Close()
}
