// Package testkit is what the tests of several packages share: the kit, an
// authorization server (package handlers) and an API behind package
// middleware over one store on a loopback listener, with its test clients
// and the requests they send it; the benchmarks of the token endpoint and
// the middleware over a store; and helpers for store tests. adaptertest
// runs its several-instances suite on it, the store adapters their outage
// tests and benchmarks.
//
// It is a package of its own, not a _test.go file, so that packages in
// other modules of the workspace can import it; being internal, it is not
// part of the API. It imports only the root module's packages and the
// standard library. The tests inside packages handlers and middleware
// cannot import it, since it imports those packages: what they share with
// it, signers and proofs, is in package dpoptest.
package testkit

import (
	"context"
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
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/middleware"
	"github.com/dpopkit/dpop/store"
)

const (
	// PublicURL is the kit's issuer and resource URL, and so the base of
	// every proof's htu, wherever its listener is: several kits behind one
	// load balancer have the same.
	PublicURL = "https://api.example.test"
	// APIPath is the path of the kit's protected API.
	APIPath = "/api/whoami"
	// ConfID is the confidential client, DPoP-bound, with client
	// credentials; ConfSecret is its secret.
	ConfID     = "conf"
	ConfSecret = "conf-secret-0123456789abcdef0123456789"
	// PubID is the public client, DPoP-bound, with authorization codes
	// (PKCE) and refresh tokens, redirected to RedirectURI.
	PubID       = "pub"
	RedirectURI = "https://app.example/cb"
	// PKCEVerifier is the code verifier of the codes SaveCode saves (RFC
	// 7636, Appendix B).
	PKCEVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)

var bg = context.Background()

// TokenPath and RevokePath are the paths of the kit's token and revocation
// endpoints.
var TokenPath, RevokePath = handlers.DefaultPaths.Token, handlers.DefaultPaths.Revoke

// Clients returns the kit's clients: the confidential one (ConfID) and the
// public one (PubID), both with the scope read.
func Clients() []*store.Client {
	return []*store.Client{
		{ID: ConfID, SecretHash: store.HashSecret(ConfSecret), GrantTypes: []string{handlers.GrantClientCredentials},
			Scopes: []string{"read"}, DPoPBound: true},
		{ID: PubID, GrantTypes: []string{handlers.GrantAuthorizationCode, handlers.GrantRefreshToken},
			RedirectURIs: []string{RedirectURI}, Scopes: []string{"read"}, DPoPBound: true},
	}
}

// RegisterClients saves the kit's Clients in s.
func RegisterClients(tb testing.TB, s store.ClientStore) {
	tb.Helper()
	for _, c := range Clients() {
		fatalIf(tb, s.SaveClient(bg, c), "SaveClient")
	}
}

// AuthServer is the authorization server of package handlers over s, with
// the given issuer and proof checks (v: nonces or a quota, say; the replay
// cache is the store's).
func AuthServer(tb testing.TB, issuer string, s store.Store, v dpop.VerifierOptions) *handlers.Server {
	tb.Helper()
	srv, err := handlers.New(handlers.Config{Issuer: issuer, Store: s, DPoP: v})
	fatalIf(tb, err, "handlers.New")
	return srv
}

// Protect is the middleware of an API at resourceURL over s: it looks
// tokens up in s (middleware.StoreValidator), which is also its replay
// cache, and checks proofs with v otherwise.
func Protect(tb testing.TB, resourceURL string, s store.Store, v dpop.VerifierOptions) func(http.Handler) http.Handler {
	tb.Helper()
	v.ReplayCache = s
	mw, err := middleware.New(middleware.Options{ResourceURL: resourceURL, Validator: middleware.StoreValidator{Store: s}, DPoP: v})
	fatalIf(tb, err, "middleware.New")
	return mw
}

// Options are a kit's settings; the zero value is a kit without server
// nonces.
type Options struct {
	// Name is what the API answers with as "instance", to tell kits
	// apart.
	Name string
	// DPoP is the proof checking of both the token endpoint and the API:
	// Nonces, say. The replay cache is the store.
	DPoP dpop.VerifierOptions
}

// Kit is a running authorization server and API over one store: every
// endpoint of package handlers, and APIPath behind package middleware,
// which answers with the principal's sub and client_id and the kit's name
// as instance. It listens on a loopback httptest server (URL), while its
// issuer and resource URL are PublicURL.
type Kit struct {
	// Name is the kit's name (Options.Name).
	Name string
	// URL is where the kit listens.
	URL string
	// Nonce is the server nonce the proofs Proof makes carry; "" for none.
	Nonce string
	ts    *httptest.Server
}

// New starts a kit over s, stopped when tb ends. It registers no client:
// see RegisterClients.
func New(tb testing.TB, s store.Store, opts Options) *Kit {
	tb.Helper()
	srv := AuthServer(tb, PublicURL, s, opts.DPoP)
	protect := Protect(tb, PublicURL, s, opts.DPoP)
	mux := http.NewServeMux()
	srv.Mount(mux)
	mux.Handle(APIPath, protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := middleware.PrincipalFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"sub": p.Subject, "client_id": p.ClientID, "instance": opts.Name})
	})))
	ts := httptest.NewServer(mux)
	tb.Cleanup(ts.Close)
	return &Kit{Name: opts.Name, URL: ts.URL, ts: ts}
}

// Reply is a response of the kit, decoded.
type Reply struct {
	Status int
	Header http.Header
	// Body is the JSON object the response held, if it was one.
	Body map[string]any
	Raw  string
	// Took is the time from sending the request to reading the whole
	// response.
	Took time.Duration
}

// Str is Body's string member k; "" when it has none.
func (r Reply) Str(k string) string { s, _ := r.Body[k].(string); return s }

// WantStatus fails tb unless r has the status and, when code is not empty,
// that OAuth error code; what names the request.
func WantStatus(tb testing.TB, what string, r Reply, status int, code string) {
	tb.Helper()
	if r.Status != status || (code != "" && r.Str("error") != code) {
		tb.Fatalf("%s: %d %s, want %d %s", what, r.Status, strings.TrimSpace(r.Raw), status, code)
	}
}

// Send sends req to the kit. It does not fail a test, so any goroutine may
// call it.
func (k *Kit) Send(req *http.Request) (Reply, error) {
	start := time.Now()
	resp, err := k.ts.Client().Do(req)
	if err != nil {
		return Reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	r := Reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw), Took: time.Since(start)}
	json.Unmarshal(raw, &r.Body)
	return r, err
}

// Do sends req to the kit, failing tb when there is no response.
func (k *Kit) Do(tb testing.TB, req *http.Request) Reply {
	tb.Helper()
	r, err := k.Send(req)
	if err != nil {
		tb.Fatalf("%s: %v", k.Name, err)
	}
	return r
}

// PostRequest is a request that posts form to path with a proof (none when
// empty), authenticated as the confidential client with HTTP Basic when
// basic is set.
func (k *Kit) PostRequest(tb testing.TB, path string, form url.Values, basic bool, proof string) *http.Request {
	tb.Helper()
	req, err := http.NewRequest("POST", k.URL+path, strings.NewReader(form.Encode()))
	fatalIf(tb, err, "NewRequest")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(ConfID, ConfSecret)
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	return req
}

// Post posts form to path as PostRequest makes it.
func (k *Kit) Post(tb testing.TB, path string, form url.Values, basic bool, proof string) Reply {
	tb.Helper()
	return k.Do(tb, k.PostRequest(tb, path, form, basic, proof))
}

// API calls the API with token and the given proof.
func (k *Kit) API(tb testing.TB, token, proof string) Reply {
	tb.Helper()
	req, err := http.NewRequest("GET", k.URL+APIPath, nil)
	fatalIf(tb, err, "NewRequest")
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", proof)
	return k.Do(tb, req)
}

// Proof is a fresh proof by s for method and path, with the kit's Nonce, and
// for token unless it is empty.
func (k *Kit) Proof(tb testing.TB, s *dpop.Signer, method, path, token string) string {
	tb.Helper()
	return Proof(tb, s, method, path, dpop.ProofOptions{AccessToken: token, Nonce: k.Nonce})
}

// APIWith calls the API with token and a fresh proof by s.
func (k *Kit) APIWith(tb testing.TB, s *dpop.Signer, token string) Reply {
	tb.Helper()
	return k.API(tb, token, k.Proof(tb, s, "GET", APIPath, token))
}

// ClientCredentials asks for a token as the confidential client, with a
// fresh proof by s.
func (k *Kit) ClientCredentials(tb testing.TB, s *dpop.Signer) Reply {
	tb.Helper()
	return k.Post(tb, TokenPath, ClientCredentialsForm(), true, k.Proof(tb, s, "POST", TokenPath, ""))
}

// Token is the access token ClientCredentials gets; anything but a DPoP
// token fails tb.
func (k *Kit) Token(tb testing.TB, s *dpop.Signer) string {
	tb.Helper()
	r := k.ClientCredentials(tb, s)
	WantStatus(tb, "token request at "+k.Name, r, http.StatusOK, "")
	if r.Str("token_type") != handlers.TokenTypeDPoP || r.Str("access_token") == "" {
		tb.Fatalf("token response of %s: %s", k.Name, r.Raw)
	}
	return r.Str("access_token")
}

// Redeem exchanges code, saved by SaveCode, for tokens as the public
// client, with a fresh proof by s.
func (k *Kit) Redeem(tb testing.TB, s *dpop.Signer, code string) Reply {
	tb.Helper()
	return k.Post(tb, TokenPath, CodeForm(code), false, k.Proof(tb, s, "POST", TokenPath, ""))
}

// Refresh uses refresh token rt of the public client, with a fresh proof by
// s.
func (k *Kit) Refresh(tb testing.TB, s *dpop.Signer, rt string) Reply {
	tb.Helper()
	form := url.Values{"grant_type": {handlers.GrantRefreshToken}, "refresh_token": {rt}, "client_id": {PubID}}
	return k.Post(tb, TokenPath, form, false, k.Proof(tb, s, "POST", TokenPath, ""))
}

// Proof is a fresh proof by s for method and path at PublicURL.
func Proof(tb testing.TB, s *dpop.Signer, method, path string, opts dpop.ProofOptions) string {
	tb.Helper()
	return dpoptest.Proof(tb, s, method, PublicURL+path, opts)
}

// ClientCredentialsForm is the form of a client credentials token request.
func ClientCredentialsForm() url.Values {
	return url.Values{"grant_type": {handlers.GrantClientCredentials}}
}

// CodeForm is the form that redeems code as the public client, with
// PKCEVerifier.
func CodeForm(code string) url.Values {
	return url.Values{"grant_type": {handlers.GrantAuthorizationCode}, "code": {code},
		"redirect_uri": {RedirectURI}, "code_verifier": {PKCEVerifier}, "client_id": {PubID}}
}

// SaveCode saves an authorization code of the public client in s, with a
// PKCE S256 challenge of PKCEVerifier and a grant of its own, as the
// authorization endpoint would, and returns its value.
func SaveCode(tb testing.TB, s store.CodeStore) string {
	tb.Helper()
	code, grant := RandomToken(), RandomToken()
	fatalIf(tb, s.SaveCode(bg, store.HashToken(code), &store.AuthorizationCode{
		GrantID: grant, ClientID: PubID, RedirectURI: RedirectURI, Scope: "read", Subject: "alice",
		CodeChallenge: handlers.S256Challenge(PKCEVerifier), CodeChallengeMethod: handlers.PKCEMethodS256,
		ExpiresAt: time.Now().Add(time.Minute),
	}), "SaveCode")
	return code
}

// RandomToken is a fresh random token value: 32 random bytes, base64url.
func RandomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// fatalIf fails tb on an error, saying what failed.
func fatalIf(tb testing.TB, err error, what string) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}
