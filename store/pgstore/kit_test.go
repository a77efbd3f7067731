package pgstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
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
)

// Kit-level tests: complete authorization servers and protected APIs
// (handlers + middleware) over one PostgreSQL schema, as several instances
// of one service behind one public address. Every kit answers on its own
// loopback httptest server, but issuer, resource URL and therefore every
// proof's htu are the shared public URL.

const (
	publicURL  = "https://api.example.test"
	apiPath    = "/api/whoami"
	confID     = "conf"
	confSecret = "conf-secret-0123456789abcdef0123"
	pubID      = "pub"
	redirect   = "https://app.example/cb"
	verifier   = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk" // RFC 7636 Appendix B
)

// kit is one instance: the authorization server and the API.
type kit struct {
	name string
	url  string // where this instance listens
}

// newKit starts an instance over st; nonces may be nil.
func newKit(t testing.TB, name string, st store.Store, nonces dpop.NonceSource) *kit {
	t.Helper()
	srv, err := handlers.New(handlers.Config{Issuer: publicURL, Store: st, DPoP: dpop.VerifierOptions{Nonces: nonces}})
	if err != nil {
		t.Fatal(err)
	}
	mw, err := middleware.New(middleware.Options{
		ResourceURL: publicURL,
		DPoP:        dpop.VerifierOptions{ReplayCache: st, Nonces: nonces},
		Validator:   middleware.StoreValidator{Store: st},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Mount(mux)
	mux.Handle(apiPath, mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := middleware.PrincipalFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"sub": p.Subject, "client_id": p.ClientID, "instance": name})
	})))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return &kit{name: name, url: ts.URL}
}

// registerClients saves the confidential and the public client.
func registerClients(t testing.TB, st store.Store) {
	t.Helper()
	for _, c := range []*store.Client{
		{ID: confID, SecretHash: store.HashSecret(confSecret), GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, DPoPBound: true},
		{ID: pubID, GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{redirect}, Scopes: []string{"read"}, DPoPBound: true},
	} {
		if err := st.SaveClient(bg, c); err != nil {
			t.Fatal(err)
		}
	}
}

func newSigner(t testing.TB) *dpop.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dpop.NewSigner(k, dpop.SignerOptions{}) // ES256
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// proof is a proof by s for method and path at the public URL.
func proof(t testing.TB, s *dpop.Signer, method, path string, opts dpop.ProofOptions) string {
	t.Helper()
	p, err := s.Proof(method, publicURL+path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// reply is a decoded response.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
	took   time.Duration
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

// send sends a request to an instance: a form body for POST, headers
// ("basic" is "id:secret" for HTTP Basic).
func send(t testing.TB, k *kit, method, path string, form url.Values, headers map[string]string) reply {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, k.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for name, v := range headers {
		if name == "basic" {
			id, secret, _ := strings.Cut(v, ":")
			req.SetBasicAuth(id, secret)
			continue
		}
		req.Header.Set(name, v)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw), took: time.Since(start)}
	json.Unmarshal(raw, &r.body)
	return r
}

// tokenRequest asks k for a client credentials token of the confidential
// client with a proof carrying nonce (none when "").
func tokenRequest(t testing.TB, k *kit, s *dpop.Signer, nonce string) reply {
	t.Helper()
	return send(t, k, "POST", "/oauth2/token", url.Values{"grant_type": {"client_credentials"}},
		map[string]string{"basic": confID + ":" + confSecret, "DPoP": proof(t, s, "POST", "/oauth2/token", dpop.ProofOptions{Nonce: nonce})})
}

// apiCall calls the API at k with token and a fresh proof carrying nonce.
func apiCall(t testing.TB, k *kit, s *dpop.Signer, token, nonce string) reply {
	t.Helper()
	return send(t, k, "GET", apiPath, nil, map[string]string{
		"Authorization": "DPoP " + token,
		"DPoP":          proof(t, s, "GET", apiPath, dpop.ProofOptions{AccessToken: token, Nonce: nonce}),
	})
}

func wantStatus(t testing.TB, r reply, status int, code, what string) {
	t.Helper()
	if r.status != status || (code != "" && r.str("error") != code) {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, strings.TrimSpace(r.raw), status, code)
	}
}

// nonceSource is an HMAC nonce source with the given secret, as every
// instance of one service would configure.
func nonceSource(t testing.TB, secret string) dpop.NonceSource {
	t.Helper()
	n, err := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestKit runs two instances, A and B, over one schema, with server nonces
// from a shared secret.
func TestKit(t *testing.T) {
	pool := testPool(t)
	schema := freshSchema(t, pool)
	stA := openStore(t, pool, schema, nil)
	// B has a pool of its own: another process.
	stB := openStore(t, newPool(t, databaseURL(t), nil), schema, nil)
	registerClients(t, stA)
	secret := strings.Repeat("shared nonce secret ", 2)
	a := newKit(t, "A", stA, nonceSource(t, secret))
	b := newKit(t, "B", stB, nonceSource(t, secret))
	signer := newSigner(t)

	// Every proof needs a server nonce; A hands one out.
	r := tokenRequest(t, a, signer, "")
	wantStatus(t, r, 400, handlers.CodeUseDPoPNonce, "token request without a nonce")
	nonce := r.header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("no DPoP-Nonce with use_dpop_nonce")
	}
	token := func(k *kit) string {
		t.Helper()
		r := tokenRequest(t, k, signer, nonce)
		wantStatus(t, r, 200, "", "token request at "+k.name)
		return r.str("access_token")
	}

	t.Run("NonceFromAAcceptedByB", func(t *testing.T) {
		r := tokenRequest(t, b, signer, nonce)
		wantStatus(t, r, 200, "", "token request at B with A's nonce")
		// Control: an instance with another secret refuses it.
		other := newKit(t, "other", stB, nonceSource(t, strings.Repeat("another secret! ", 2)))
		r = tokenRequest(t, other, signer, nonce)
		wantStatus(t, r, 400, handlers.CodeUseDPoPNonce, "A's nonce at an instance with another secret")
	})

	t.Run("ProofAcceptedByARefusedByB", func(t *testing.T) {
		p := proof(t, signer, "POST", "/oauth2/token", dpop.ProofOptions{Nonce: nonce})
		form := url.Values{"grant_type": {"client_credentials"}}
		hdr := map[string]string{"basic": confID + ":" + confSecret, "DPoP": p}
		wantStatus(t, send(t, a, "POST", "/oauth2/token", form, hdr), 200, "", "proof at A")
		wantStatus(t, send(t, b, "POST", "/oauth2/token", form, hdr), 400, handlers.CodeInvalidDPoPProof, "the same proof at B")

		// The same at the API: a proof used at A is a replay at B.
		tok := token(a)
		p = proof(t, signer, "GET", apiPath, dpop.ProofOptions{AccessToken: tok, Nonce: nonce})
		hdr = map[string]string{"Authorization": "DPoP " + tok, "DPoP": p}
		wantStatus(t, send(t, a, "GET", apiPath, nil, hdr), 200, "", "API call at A")
		wantStatus(t, send(t, b, "GET", apiPath, nil, hdr), 401, middleware.CodeInvalidDPoPProof, "the same API proof at B")
	})

	t.Run("TokenFromAAcceptedByB", func(t *testing.T) {
		tok := token(a)
		r := apiCall(t, b, signer, tok, nonce)
		wantStatus(t, r, 200, "", "A's token at B")
		if r.str("sub") != confID || r.str("instance") != "B" {
			t.Fatalf("B answered %s", r.raw)
		}
	})

	t.Run("RevocationAtASeenByB", func(t *testing.T) {
		tok := token(a)
		wantStatus(t, apiCall(t, b, signer, tok, nonce), 200, "", "token at B before revocation")
		r := send(t, a, "POST", "/oauth2/revoke", url.Values{"token": {tok}}, map[string]string{"basic": confID + ":" + confSecret})
		wantStatus(t, r, 200, "", "revocation at A")
		wantStatus(t, apiCall(t, b, signer, tok, nonce), 401, middleware.CodeInvalidToken, "token at B after revocation at A")
	})

	t.Run("ConcurrentCodeRedemption", func(t *testing.T) {
		// 32 redemptions of one code, spread over A and B: one token.
		code := "code-" + t.Name()
		must(t, stA.SaveCode(bg, store.HashToken(code), &store.AuthorizationCode{
			GrantID: "grant-race", ClientID: pubID, RedirectURI: redirect, Scope: "read", Subject: "alice",
			CodeChallenge: handlers.S256Challenge(verifier), CodeChallengeMethod: handlers.PKCEMethodS256,
			ExpiresAt: time.Now().Add(time.Minute),
		}))
		client := newSigner(t)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
			"code_verifier": {verifier}, "client_id": {pubID}}
		const n = 32
		replies := make([]reply, n)
		proofs := make([]string, n)
		for i := range proofs {
			proofs[i] = proof(t, client, "POST", "/oauth2/token", dpop.ProofOptions{Nonce: nonce})
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			k := []*kit{a, b}[i%2]
			wg.Go(func() {
				<-start
				replies[i] = send(t, k, "POST", "/oauth2/token", form, map[string]string{"DPoP": proofs[i]})
			})
		}
		close(start)
		wg.Wait()
		var issued []string
		for _, r := range replies {
			switch {
			case r.status == 200:
				issued = append(issued, r.str("access_token"))
			case r.status == 400 && r.str("error") == handlers.CodeInvalidGrant:
			default:
				t.Errorf("redemption: %d %s", r.status, r.raw)
			}
		}
		if len(issued) != 1 {
			t.Fatalf("%d of %d concurrent redemptions got a token, want exactly 1", len(issued), n)
		}
		// The code was replayed, so its grant is revoked (RFC 6749 §4.1.2):
		// the one token is refused by both instances.
		for _, k := range []*kit{a, b} {
			wantStatus(t, apiCall(t, k, client, issued[0], nonce), 401, middleware.CodeInvalidToken, "token of a replayed code at "+k.name)
		}
	})

	t.Run("RefreshRevocationAtASeenByB", func(t *testing.T) {
		// The refresh token revokes its whole grant (RFC 7009 §2.1), so the
		// access token issued with it stops working at B too.
		code := "code-" + t.Name()
		must(t, stA.SaveCode(bg, store.HashToken(code), &store.AuthorizationCode{
			GrantID: "grant-refresh", ClientID: pubID, RedirectURI: redirect, Scope: "read", Subject: "bob",
			CodeChallenge: handlers.S256Challenge(verifier), CodeChallengeMethod: handlers.PKCEMethodS256,
			ExpiresAt: time.Now().Add(time.Minute),
		}))
		client := newSigner(t)
		r := send(t, a, "POST", "/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {redirect}, "code_verifier": {verifier}, "client_id": {pubID}},
			map[string]string{"DPoP": proof(t, client, "POST", "/oauth2/token", dpop.ProofOptions{Nonce: nonce})})
		wantStatus(t, r, 200, "", "code redemption at A")
		at, rt := r.str("access_token"), r.str("refresh_token")
		if rt == "" {
			t.Fatalf("no refresh token: %s", r.raw)
		}
		wantStatus(t, apiCall(t, b, client, at, nonce), 200, "", "access token at B")
		r = send(t, a, "POST", "/oauth2/revoke", url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}, "client_id": {pubID}}, nil)
		wantStatus(t, r, 200, "", "refresh token revocation at A")
		wantStatus(t, apiCall(t, b, client, at, nonce), 401, middleware.CodeInvalidToken, "access token at B after its grant was revoked at A")
	})
}

// TestKitOutage takes the database away from a running instance: the token
// endpoint and the API answer 503 server_error within a bounded time, never
// 200 or 401, and the same store serves again once the database is back.
func TestKitOutage(t *testing.T) {
	rawURL := databaseURL(t)
	schema := freshSchema(t, testPool(t))
	p, proxied := newProxy(t, rawURL)
	const timeout = time.Second
	st := openStore(t, newPool(t, proxied, nil), schema, func(o *Options) { o.QueryTimeout = timeout })
	registerClients(t, st)
	k := newKit(t, "P", st, nil)
	signer := newSigner(t)
	r := tokenRequest(t, k, signer, "")
	wantStatus(t, r, 200, "", "token request")
	tok := r.str("access_token")
	wantStatus(t, apiCall(t, k, signer, tok, ""), 200, "", "API call")

	for _, tc := range []struct {
		name  string
		mode  proxyMode
		bound time.Duration
	}{
		{"ClosedPort", portClosed, 3 * time.Second},
		{"Refused", refuse, 3 * time.Second},
		{"Partition", blackhole, timeout + 2*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, p.set(tc.mode))
			for _, r := range []reply{tokenRequest(t, k, signer, ""), apiCall(t, k, signer, tok, "")} {
				wantStatus(t, r, 503, handlers.CodeServerError, "request with the database unreachable")
				if r.took > tc.bound {
					t.Errorf("the refusal took %v, more than %v", r.took, tc.bound)
				}
			}
			must(t, p.set(forward))
			var again reply
			waitFor(t, 10*time.Second, func() bool {
				again = tokenRequest(t, k, signer, "")
				return again.status == 200
			}, "the token endpoint answers again")
			wantStatus(t, apiCall(t, k, signer, again.str("access_token"), ""), 200, "", "API call with a new token")
			wantStatus(t, apiCall(t, k, signer, tok, ""), 200, "", "API call with the token from before the outage")
		})
	}
}
