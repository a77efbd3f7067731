package redisstore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/middleware"
	"github.com/dpopkit/dpop/store"
	"github.com/dpopkit/dpop/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// Two complete kits (authorization server and protected API) over one Redis
// prefix, as several instances of one service behind one public address:
// both have the same public URL, which every proof's htu names, while the
// requests go to each instance's own listener.

const (
	publicURL    = "https://api.example.test"
	apiPath      = "/api/data"
	confID       = "conf" // confidential, DPoP-bound, client credentials
	confSecret   = "conf-secret-0123456789abcdef0123456789"
	pubID        = "pub" // public, DPoP-bound, code (PKCE) and refresh
	redirectURI  = "https://app.example/cb"
	pkceVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk" // RFC 7636 Appendix B
)

var tokenPath, revokePath = handlers.DefaultPaths.Token, handlers.DefaultPaths.Revoke

// kit is one instance: handlers and middleware on a Redis store, behind its
// own loopback listener.
type kit struct {
	t     *testing.T
	name  string
	store *redisstore.Store
	ts    *httptest.Server
}

// newKit starts an instance over c and prefix; nonces, when not nil, turns
// server nonces on at the token endpoint and at the API.
func newKit(t *testing.T, name string, c redis.UniversalClient, prefix string, nonces dpop.NonceSource) *kit {
	t.Helper()
	s, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	srv, err := handlers.New(handlers.Config{Issuer: publicURL, Store: s, DPoP: dpop.VerifierOptions{Nonces: nonces}})
	must(t, err)
	mw, err := middleware.New(middleware.Options{
		ResourceURL: publicURL,
		Validator:   middleware.StoreValidator{Store: s},
		DPoP:        dpop.VerifierOptions{ReplayCache: s, Nonces: nonces},
	})
	must(t, err)
	mux := http.NewServeMux()
	srv.Mount(mux)
	mux.Handle(apiPath, mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := middleware.PrincipalFrom(r.Context())
		fmt.Fprint(w, p.Subject)
	})))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return &kit{t: t, name: name, store: s, ts: ts}
}

// registerClients saves the two test clients.
func registerClients(t *testing.T, s store.ClientStore) {
	t.Helper()
	for _, c := range []*store.Client{
		{ID: confID, SecretHash: store.HashSecret(confSecret), GrantTypes: []string{handlers.GrantClientCredentials},
			Scopes: []string{"read"}, DPoPBound: true},
		{ID: pubID, GrantTypes: []string{handlers.GrantAuthorizationCode, handlers.GrantRefreshToken},
			RedirectURIs: []string{redirectURI}, Scopes: []string{"read"}, DPoPBound: true},
	} {
		must(t, s.SaveClient(bg, c))
	}
}

// twoKits starts instances A and B over one fresh prefix, each with its own
// Redis client (as two processes would have), and registers the clients.
// With nonces, both share one nonce secret.
func twoKits(t *testing.T, nonces bool) (a, b *kit) {
	t.Helper()
	prefix := freshPrefix()
	setup := newClient(t)
	t.Cleanup(func() { deleteUnder(t, setup, prefix) })
	var na, nb dpop.NonceSource
	if nonces {
		secret := make([]byte, 32)
		rand.Read(secret)
		x, err := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: secret})
		must(t, err)
		y, err := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: secret})
		must(t, err)
		na, nb = x, y
	}
	a = newKit(t, "A", newClient(t), prefix, na)
	b = newKit(t, "B", newClient(t), prefix, nb)
	registerClients(t, a.store)
	return a, b
}

func newSigner(tb testing.TB) *dpop.Signer {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := dpop.NewSigner(k, dpop.SignerOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// proof is a fresh proof for a request to path at the public URL.
func proof(tb testing.TB, s *dpop.Signer, method, path string, opts dpop.ProofOptions) string {
	tb.Helper()
	p, err := s.Proof(method, publicURL+path, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// reply is a decoded response.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

func (k *kit) do(req *http.Request) reply {
	k.t.Helper()
	resp, err := k.ts.Client().Do(req)
	if err != nil {
		k.t.Fatalf("%s: %v", k.name, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r
}

// post sends a form to path with a proof (unless empty), authenticating
// as conf with HTTP Basic when basic is set.
func (k *kit) post(path string, form url.Values, basic bool, dpopProof string) reply {
	k.t.Helper()
	req, err := http.NewRequest("POST", k.ts.URL+path, strings.NewReader(form.Encode()))
	must(k.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(confID, confSecret)
	}
	if dpopProof != "" {
		req.Header.Set("DPoP", dpopProof)
	}
	return k.do(req)
}

// clientCredentials asks for a token as conf with a proof by s.
func (k *kit) clientCredentials(s *dpop.Signer, nonce string) reply {
	k.t.Helper()
	return k.post(tokenPath, url.Values{"grant_type": {handlers.GrantClientCredentials}}, true,
		proof(k.t, s, "POST", tokenPath, dpop.ProofOptions{Nonce: nonce}))
}

// api calls the protected API with token and the given proof.
func (k *kit) api(token, dpopProof string) reply {
	k.t.Helper()
	req, err := http.NewRequest("GET", k.ts.URL+apiPath, nil)
	must(k.t, err)
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", dpopProof)
	return k.do(req)
}

// apiWith calls the API with a fresh proof by s for token.
func (k *kit) apiWith(s *dpop.Signer, token string) reply {
	k.t.Helper()
	return k.api(token, proof(k.t, s, "GET", apiPath, dpop.ProofOptions{AccessToken: token}))
}

// saveCode stores an authorization code for pub with a PKCE S256
// challenge, as the authorization endpoint would, and returns its value.
func saveCode(t *testing.T, s store.CodeStore) string {
	t.Helper()
	var b [32]byte
	rand.Read(b[:])
	code := base64.RawURLEncoding.EncodeToString(b[:])
	rand.Read(b[:])
	must(t, s.SaveCode(bg, store.HashToken(code), &store.AuthorizationCode{
		GrantID: base64.RawURLEncoding.EncodeToString(b[:]), ClientID: pubID, RedirectURI: redirectURI,
		Scope: "read", Subject: "alice", CodeChallenge: handlers.S256Challenge(pkceVerifier),
		CodeChallengeMethod: handlers.PKCEMethodS256, ExpiresAt: time.Now().Add(time.Minute),
	}))
	return code
}

// redeem exchanges code for tokens as pub with a proof by s.
func (k *kit) redeem(s *dpop.Signer, code string) reply {
	k.t.Helper()
	return k.post(tokenPath, url.Values{"grant_type": {handlers.GrantAuthorizationCode}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {pkceVerifier}, "client_id": {pubID}}, false,
		proof(k.t, s, "POST", tokenPath, dpop.ProofOptions{}))
}

// refresh uses a refresh token of pub with a proof by s.
func (k *kit) refresh(s *dpop.Signer, rt string) reply {
	k.t.Helper()
	return k.post(tokenPath, url.Values{"grant_type": {handlers.GrantRefreshToken}, "refresh_token": {rt}, "client_id": {pubID}}, false,
		proof(k.t, s, "POST", tokenPath, dpop.ProofOptions{}))
}

func wantStatus(t *testing.T, what string, r reply, status int, code string) {
	t.Helper()
	if r.status != status || (code != "" && r.str("error") != code) {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, strings.TrimSpace(r.raw), status, code)
	}
}

// token asks A for a client credentials token and returns it.
func token(t *testing.T, k *kit, s *dpop.Signer) string {
	t.Helper()
	r := k.clientCredentials(s, "")
	wantStatus(t, "token request at "+k.name, r, http.StatusOK, "")
	if r.str("token_type") != handlers.TokenTypeDPoP || r.str("access_token") == "" {
		t.Fatalf("token response %s", r.raw)
	}
	return r.str("access_token")
}

func TestKitProofReplayAcrossInstances(t *testing.T) {
	a, b := twoKits(t, false)
	s := newSigner(t)
	// At the token endpoint: a proof A accepted is refused by B.
	p := proof(t, s, "POST", tokenPath, dpop.ProofOptions{})
	form := url.Values{"grant_type": {handlers.GrantClientCredentials}}
	r := a.post(tokenPath, form, true, p)
	wantStatus(t, "token request at A", r, http.StatusOK, "")
	wantStatus(t, "the same proof at B", b.post(tokenPath, form, true, p), http.StatusBadRequest, handlers.CodeInvalidDPoPProof)
	// At the API.
	tok := r.str("access_token")
	p = proof(t, s, "GET", apiPath, dpop.ProofOptions{AccessToken: tok})
	wantStatus(t, "API call at A", a.api(tok, p), http.StatusOK, "")
	r = b.api(tok, p)
	wantStatus(t, "the same proof at B's API", r, http.StatusUnauthorized, middleware.CodeInvalidDPoPProof)
	if !strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_dpop_proof") {
		t.Errorf("challenge %q", r.header.Get("WWW-Authenticate"))
	}
}

func TestKitTokenFromAAcceptedAtB(t *testing.T) {
	a, b := twoKits(t, false)
	s := newSigner(t)
	tok := token(t, a, s)
	r := b.apiWith(s, tok)
	wantStatus(t, "A's token at B's API", r, http.StatusOK, "")
	if r.raw != confID {
		t.Fatalf("principal %q, want %q", r.raw, confID)
	}
	// Bound to the key: another key's proof is refused at B.
	wantStatus(t, "A's token with another key at B", b.apiWith(newSigner(t), tok), http.StatusUnauthorized, middleware.CodeInvalidToken)
}

// TestKitConcurrentCodeRedemption: 32 redemptions of one code, spread over
// both instances, give exactly one token (RFC 6749 §4.1.2); the others
// revoke the grant, so that token stops working at both.
func TestKitConcurrentCodeRedemption(t *testing.T) {
	a, b := twoKits(t, false)
	s := newSigner(t)
	code := saveCode(t, a.store)
	const n = 32
	replies := make([]reply, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		k := a
		if i%2 == 1 {
			k = b
		}
		wg.Go(func() {
			<-start
			replies[i] = k.redeem(s, code)
		})
	}
	close(start)
	wg.Wait()
	var winner string
	wins := 0
	for i, r := range replies {
		switch {
		case r.status == http.StatusOK:
			wins++
			winner = r.str("access_token")
		case r.status != http.StatusBadRequest || r.str("error") != handlers.CodeInvalidGrant:
			t.Errorf("redemption %d: %d %s", i, r.status, r.raw)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent redemptions got a token, want 1", wins, n)
	}
	wantStatus(t, "the token of a replayed code at A", a.apiWith(s, winner), http.StatusUnauthorized, middleware.CodeInvalidToken)
	wantStatus(t, "the token of a replayed code at B", b.apiWith(s, winner), http.StatusUnauthorized, middleware.CodeInvalidToken)
}

// TestKitNonceFromAAcceptedAtB: server nonces (RFC 9449 §8, §9) issued by
// one instance are accepted by the other, at the token endpoint and at the
// API.
func TestKitNonceFromAAcceptedAtB(t *testing.T) {
	a, b := twoKits(t, true)
	s := newSigner(t)
	r := a.clientCredentials(s, "")
	wantStatus(t, "token request without a nonce at A", r, http.StatusBadRequest, handlers.CodeUseDPoPNonce)
	nonce := r.header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("no DPoP-Nonce from A")
	}
	r = b.clientCredentials(s, nonce)
	wantStatus(t, "token request at B with A's nonce", r, http.StatusOK, "")
	tok := r.str("access_token")
	r = b.apiWith(s, tok)
	wantStatus(t, "API call without a nonce at B", r, http.StatusUnauthorized, middleware.CodeUseDPoPNonce)
	nonce = r.header.Get("DPoP-Nonce")
	r = a.api(tok, proof(t, s, "GET", apiPath, dpop.ProofOptions{AccessToken: tok, Nonce: nonce}))
	wantStatus(t, "API call at A with B's nonce", r, http.StatusOK, "")
}

// TestKitRevocationAtASeenAtB: revoking an access token, or a refresh token
// (which revokes its grant, RFC 7009 §2.1), at A takes effect at B.
func TestKitRevocationAtASeenAtB(t *testing.T) {
	a, b := twoKits(t, false)
	s := newSigner(t)
	t.Run("AccessToken", func(t *testing.T) {
		tok := token(t, a, s)
		wantStatus(t, "API call at B", b.apiWith(s, tok), http.StatusOK, "")
		wantStatus(t, "revocation at A", a.post(revokePath, url.Values{"token": {tok}}, true, ""), http.StatusOK, "")
		wantStatus(t, "API call at B after revocation", b.apiWith(s, tok), http.StatusUnauthorized, middleware.CodeInvalidToken)
	})
	t.Run("RefreshTokenRevokesGrant", func(t *testing.T) {
		r := a.redeem(s, saveCode(t, a.store))
		wantStatus(t, "redemption at A", r, http.StatusOK, "")
		at, rt := r.str("access_token"), r.str("refresh_token")
		wantStatus(t, "API call at B", b.apiWith(s, at), http.StatusOK, "")
		r = a.post(revokePath, url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}, "client_id": {pubID}}, false, "")
		wantStatus(t, "refresh token revocation at A", r, http.StatusOK, "")
		wantStatus(t, "access token of the revoked grant at B", b.apiWith(s, at), http.StatusUnauthorized, middleware.CodeInvalidToken)
		wantStatus(t, "revoked refresh token at B", b.refresh(s, rt), http.StatusBadRequest, handlers.CodeInvalidGrant)
	})
}

// TestKitRefreshRotationAcrossInstances: a public client's refresh token
// rotated at B and replayed at A revokes the grant everywhere (RFC 9700
// §4.14.2).
func TestKitRefreshRotationAcrossInstances(t *testing.T) {
	a, b := twoKits(t, false)
	s := newSigner(t)
	r := a.redeem(s, saveCode(t, a.store))
	wantStatus(t, "redemption at A", r, http.StatusOK, "")
	rt1 := r.str("refresh_token")
	r = b.refresh(s, rt1)
	wantStatus(t, "refresh at B", r, http.StatusOK, "")
	at2, rt2 := r.str("access_token"), r.str("refresh_token")
	if rt2 == "" || rt2 == rt1 {
		t.Fatal("the public client's refresh token was not rotated")
	}
	wantStatus(t, "new access token at A", a.apiWith(s, at2), http.StatusOK, "")
	wantStatus(t, "rotated refresh token replayed at A", a.refresh(s, rt1), http.StatusBadRequest, handlers.CodeInvalidGrant)
	wantStatus(t, "access token of the replayed grant at B", b.apiWith(s, at2), http.StatusUnauthorized, middleware.CodeInvalidToken)
	wantStatus(t, "new refresh token of the replayed grant at B", b.refresh(s, rt2), http.StatusBadRequest, handlers.CodeInvalidGrant)
}

// switchDialer connects to the live Redis while up, and to a closed port
// while down; going down closes the connections it made, as a Redis restart
// or a network failure would.
type switchDialer struct {
	live  string
	mu    sync.Mutex
	up    bool
	conns []net.Conn
}

func (d *switchDialer) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	addr := "127.0.0.1:1"
	if d.up {
		addr = d.live
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *switchDialer) set(up bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.up = up
	if !up {
		for _, c := range d.conns {
			c.Close()
		}
		d.conns = nil
	}
}

// TestKitRedisOutage: with Redis away, a token request and an API call are
// answered 503 server_error quickly; when it is back, the same store, in
// the same server, works again.
func TestKitRedisOutage(t *testing.T) {
	opts := redisOptions(t)
	d := &switchDialer{live: opts.Addr, up: true}
	opts.Dialer = d.dial
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 200*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	opts.MaxRetries, opts.DialerRetries = 1, 1
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	prefix := freshPrefix()
	setup := newClient(t)
	t.Cleanup(func() { deleteUnder(t, setup, prefix) })
	k := newKit(t, "A", c, prefix, nil)
	registerClients(t, k.store)
	s := newSigner(t)

	tok := token(t, k, s)
	wantStatus(t, "API call with Redis up", k.apiWith(s, tok), http.StatusOK, "")

	d.set(false)
	for _, call := range []struct {
		name string
		do   func() reply
	}{
		{"token request", func() reply { return k.clientCredentials(s, "") }},
		{"API call", func() reply { return k.apiWith(s, tok) }},
	} {
		start := time.Now()
		r := call.do()
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("%s with Redis down took %v", call.name, el)
		}
		wantStatus(t, call.name+" with Redis down", r, http.StatusServiceUnavailable, "server_error")
	}

	d.set(true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := k.clientCredentials(s, "")
		if r.status == http.StatusOK {
			wantStatus(t, "API call after recovery", k.apiWith(s, r.str("access_token")), http.StatusOK, "")
			wantStatus(t, "API call with the old token after recovery", k.apiWith(s, tok), http.StatusOK, "")
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after Redis came back: %d %s", r.status, r.raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
