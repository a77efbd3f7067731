package adaptertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/middleware"
	"github.com/dpopkit/dpop/store"
)

// The kit wiring of RunInstances: instances of one service, each the
// authorization server of package handlers and an API behind package
// middleware, over one store and on a loopback listener of its own, as
// processes behind one load balancer. Every instance has the same public
// URL, which issuer, resource URL and the htu of every proof name, while
// requests go to each instance's own listener.

const (
	publicURL    = "https://api.example.test"
	apiPath      = "/api/whoami"
	confID       = "conf" // confidential, DPoP-bound: client credentials
	confSecret   = "conf-secret-0123456789abcdef0123456789"
	pubID        = "pub" // public, DPoP-bound: code with PKCE, and refresh
	redirectURI  = "https://app.example/cb"
	pkceVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk" // RFC 7636 Appendix B
)

var tokenPath, revokePath = handlers.DefaultPaths.Token, handlers.DefaultPaths.Revoke

// instance is one instance of the service.
type instance struct {
	t     *testing.T
	name  string
	ts    *httptest.Server
	nonce string // carried by the proofs the helpers make; "" without nonces
}

// newInstance starts an instance over s; nonces, when not nil, turns server
// nonces on at the token endpoint and at the API. The API answers with the
// principal and the instance's name.
func newInstance(t *testing.T, name string, s store.Store, nonces dpop.NonceSource) *instance {
	t.Helper()
	srv, err := handlers.New(handlers.Config{Issuer: publicURL, Store: s, DPoP: dpop.VerifierOptions{Nonces: nonces}})
	must(t, err, "handlers.New")
	mw, err := middleware.New(middleware.Options{
		ResourceURL: publicURL,
		Validator:   middleware.StoreValidator{Store: s},
		DPoP:        dpop.VerifierOptions{ReplayCache: s, Nonces: nonces},
	})
	must(t, err, "middleware.New")
	mux := http.NewServeMux()
	srv.Mount(mux)
	mux.Handle(apiPath, mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := middleware.PrincipalFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"sub": p.Subject, "client_id": p.ClientID, "instance": name})
	})))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return &instance{t: t, name: name, ts: ts}
}

// pair is instances A and B over one store, with the test clients
// registered.
type pair struct {
	store store.Store
	a, b  *instance
}

// NewStores returns two stores over the same data, as two processes would
// have them (two connections to one database, the same key prefix or
// schema), and a function that releases both. A store that lives in the
// process has nothing to share: SameStore gives it to both instances.
type NewStores func(t *testing.T) (a, b store.Store, cleanup func())

// SameStore makes a NewStores that hands the one store newStore returns to
// both instances: for stores that live in the process, such as
// store.Memory.
func SameStore(newStore NewStore) NewStores {
	return func(t *testing.T) (store.Store, store.Store, func()) {
		s, cleanup := newStore(t)
		return s, s, cleanup
	}
}

// newPair starts A over the first and B over the second store of a fresh
// pair from newStores. With nonces, each
// has a nonce source of its own over one shared secret, as processes would,
// and the proofs the helpers make carry a nonce A handed out.
func newPair(t *testing.T, newStores NewStores, nonces bool) *pair {
	t.Helper()
	s, sb, cleanup := newStores(t)
	if s == nil || sb == nil {
		t.Fatal("constructor returned a nil store")
	}
	if cleanup != nil {
		t.Cleanup(cleanup)
	}
	var na, nb dpop.NonceSource
	if nonces {
		secret := make([]byte, 32)
		rand.Read(secret)
		na, nb = nonceSource(t, secret), nonceSource(t, secret)
	}
	p := &pair{store: s, a: newInstance(t, "A", s, na), b: newInstance(t, "B", sb, nb)}
	for _, c := range []*store.Client{
		{ID: confID, SecretHash: store.HashSecret(confSecret), GrantTypes: []string{handlers.GrantClientCredentials},
			Scopes: []string{"read"}, DPoPBound: true},
		{ID: pubID, GrantTypes: []string{handlers.GrantAuthorizationCode, handlers.GrantRefreshToken},
			RedirectURIs: []string{redirectURI}, Scopes: []string{"read"}, DPoPBound: true},
	} {
		must(t, s.SaveClient(bg, c), "SaveClient")
	}
	if nonces {
		r := p.a.post(tokenPath, clientCredentialsForm(), true, proof(t, newSigner(t), "POST", tokenPath, dpop.ProofOptions{}))
		wantStatus(t, "token request without a nonce at A", r, http.StatusBadRequest, string(dpop.CodeUseNonce))
		p.a.nonce = r.header.Get("DPoP-Nonce")
		if p.a.nonce == "" {
			t.Fatal("no DPoP-Nonce from A with use_dpop_nonce")
		}
		p.b.nonce = p.a.nonce
	}
	return p
}

// nonceSource is an HMAC nonce source keyed by secret.
func nonceSource(t *testing.T, secret []byte) dpop.NonceSource {
	t.Helper()
	n, err := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: secret})
	must(t, err, "NewHMACNonceSource")
	return n
}

func newSigner(t *testing.T) *dpop.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err, "GenerateKey")
	s, err := dpop.NewSigner(k, dpop.SignerOptions{})
	must(t, err, "NewSigner")
	return s
}

// proof is a fresh proof by s for a request to path at the public URL.
func proof(t *testing.T, s *dpop.Signer, method, path string, opts dpop.ProofOptions) string {
	t.Helper()
	p, err := s.Proof(method, publicURL+path, opts)
	must(t, err, "Proof")
	return p
}

// proof is a fresh proof by s with the instance's nonce, for token when not
// empty.
func (k *instance) proof(s *dpop.Signer, method, path, token string) string {
	k.t.Helper()
	return proof(k.t, s, method, path, dpop.ProofOptions{AccessToken: token, Nonce: k.nonce})
}

// reply is a decoded response.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

// send sends req to the instance. It does not fail the test, so any
// goroutine may call it.
func (k *instance) send(req *http.Request) (reply, error) {
	resp, err := k.ts.Client().Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r, err
}

func (k *instance) do(req *http.Request) reply {
	k.t.Helper()
	r, err := k.send(req)
	if err != nil {
		k.t.Fatalf("%s: %v", k.name, err)
	}
	return r
}

// postRequest is a form posted to path with a proof (unless empty),
// authenticating as the confidential client with HTTP Basic when basic is
// set.
func (k *instance) postRequest(path string, form url.Values, basic bool, dpopProof string) *http.Request {
	req, err := http.NewRequest("POST", k.ts.URL+path, strings.NewReader(form.Encode()))
	must(k.t, err, "NewRequest")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(confID, confSecret)
	}
	if dpopProof != "" {
		req.Header.Set("DPoP", dpopProof)
	}
	return req
}

func (k *instance) post(path string, form url.Values, basic bool, dpopProof string) reply {
	k.t.Helper()
	return k.do(k.postRequest(path, form, basic, dpopProof))
}

// api calls the API with token and the given proof.
func (k *instance) api(token, dpopProof string) reply {
	k.t.Helper()
	req, err := http.NewRequest("GET", k.ts.URL+apiPath, nil)
	must(k.t, err, "NewRequest")
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", dpopProof)
	return k.do(req)
}

// apiWith calls the API with token and a fresh proof by s.
func (k *instance) apiWith(s *dpop.Signer, token string) reply {
	k.t.Helper()
	return k.api(token, k.proof(s, "GET", apiPath, token))
}

func clientCredentialsForm() url.Values {
	return url.Values{"grant_type": {handlers.GrantClientCredentials}}
}

func codeForm(code string) url.Values {
	return url.Values{"grant_type": {handlers.GrantAuthorizationCode}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {pkceVerifier}, "client_id": {pubID}}
}

// token asks k for a client credentials token with a proof by s and
// returns it.
func (k *instance) token(s *dpop.Signer) string {
	k.t.Helper()
	r := k.post(tokenPath, clientCredentialsForm(), true, k.proof(s, "POST", tokenPath, ""))
	wantStatus(k.t, "token request at "+k.name, r, http.StatusOK, "")
	if r.str("token_type") != handlers.TokenTypeDPoP || r.str("access_token") == "" {
		k.t.Fatalf("token response of %s: %s", k.name, r.raw)
	}
	return r.str("access_token")
}

// redeem exchanges code for tokens as the public client with a proof by s.
func (k *instance) redeem(s *dpop.Signer, code string) reply {
	k.t.Helper()
	return k.post(tokenPath, codeForm(code), false, k.proof(s, "POST", tokenPath, ""))
}

// refresh uses a refresh token of the public client with a proof by s.
func (k *instance) refresh(s *dpop.Signer, rt string) reply {
	k.t.Helper()
	form := url.Values{"grant_type": {handlers.GrantRefreshToken}, "refresh_token": {rt}, "client_id": {pubID}}
	return k.post(tokenPath, form, false, k.proof(s, "POST", tokenPath, ""))
}

// saveCode stores an authorization code of the public client with a PKCE
// S256 challenge and a grant of its own, as the authorization endpoint
// would, and returns its value.
func saveCode(t *testing.T, s store.CodeStore) string {
	t.Helper()
	code, grant := randomString(), randomString()
	must(t, s.SaveCode(bg, store.HashToken(code), &store.AuthorizationCode{
		GrantID: grant, ClientID: pubID, RedirectURI: redirectURI, Scope: "read", Subject: "alice",
		CodeChallenge: handlers.S256Challenge(pkceVerifier), CodeChallengeMethod: handlers.PKCEMethodS256,
		ExpiresAt: time.Now().Add(time.Minute),
	}), "SaveCode")
	return code
}

func randomString() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// wantStatus fails unless r has the status and, when code is not empty,
// that OAuth error code.
func wantStatus(t *testing.T, what string, r reply, status int, code string) {
	t.Helper()
	if r.status != status || (code != "" && r.str("error") != code) {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, strings.TrimSpace(r.raw), status, code)
	}
}
