package middleware

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/store"
)

// Resource server tests: one per item of section 3 of the DPoP checklist.

var bg = context.Background()

const apiPath = "/api/hello"

type rs struct {
	t      *testing.T
	store  *store.Memory
	ts     *httptest.Server
	signer *dpop.Signer
	token  string // an access token bound to signer
}

// newRS starts an API behind the middleware on an httptest server, with an
// opaque token bound to a fresh key saved in the store.
func newRS(t *testing.T, edit func(*Options)) *rs {
	t.Helper()
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	r := &rs{t: t, store: m, signer: newSigner(t)}
	var handler http.Handler
	r.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { handler.ServeHTTP(w, req) }))
	t.Cleanup(r.ts.Close)
	opts := Options{ResourceURL: r.ts.URL, Validator: StoreValidator{Store: m}}
	if edit != nil {
		edit(&opts)
	}
	mw, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+apiPath, mw(http.HandlerFunc(hello)))
	mux.Handle("GET /api/admin", mw(RequireScope("admin")(http.HandlerFunc(hello))))
	handler = mux
	r.token = r.saveToken(r.signer.JKT(), "read write")
	return r
}

// hello answers with the principal.
func hello(w http.ResponseWriter, r *http.Request) {
	p, ok := PrincipalFrom(r.Context())
	if !ok {
		http.Error(w, "no principal", 500)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"sub": p.Subject, "client_id": p.ClientID, "scope": strings.Join(p.Scopes, " "), "jkt": p.JKT})
}

// newSigner is a signer with a fresh ES256 key.
func newSigner(t testing.TB) *dpop.Signer { t.Helper(); return dpoptest.NewSigner(t) }

func (r *rs) saveToken(jkt, scope string) string {
	r.t.Helper()
	tok := randomToken()
	err := r.store.SaveAccessToken(bg, store.HashToken(tok), &store.AccessToken{
		GrantID: "g", ClientID: "demo", Subject: "alice", Scope: scope, JKT: jkt, Audience: []string{r.ts.URL},
		IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		r.t.Fatal(err)
	}
	return tok
}

func randomToken() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// proof is a proof by signer for GET path with ath of token.
func (r *rs) proof(signer *dpop.Signer, method, path, token string, nonce string) string {
	r.t.Helper()
	return dpoptest.Proof(r.t, signer, method, r.ts.URL+path, dpop.ProofOptions{AccessToken: token, Nonce: nonce})
}

type reply struct {
	status int
	header http.Header
	body   string
}

// get sends GET path with the given headers (each value a separate line).
func (r *rs) get(path string, headers map[string][]string) reply {
	r.t.Helper()
	req, err := http.NewRequest("GET", r.ts.URL+path, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	for k, vs := range headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

// dpopHeaders is a correct request's headers.
func (r *rs) dpopHeaders(path string) map[string][]string {
	return map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "GET", path, r.token, "")}}
}

// wantChallenge asserts a refusal and its WWW-Authenticate error.
func wantChallenge(t *testing.T, got reply, status int, code dpop.ErrorCode) {
	t.Helper()
	www := got.header.Get("WWW-Authenticate")
	if got.status != status || !strings.HasPrefix(www, "DPoP ") || !strings.Contains(www, `algs="ES256 `) {
		t.Fatalf("got %d %q %s, want %d", got.status, www, got.body, status)
	}
	if code == "" {
		if strings.Contains(www, "error=") {
			t.Fatalf("challenge %q has an error without credentials", www)
		}
		return
	}
	if !strings.Contains(www, `error="`+string(code)+`"`) {
		t.Fatalf("challenge %q, want error %q", www, code)
	}
}

// Checklist 3: Authorization: DPoP plus a proof with ath passes, and the
// handler sees the principal.
func TestResourceAccepts(t *testing.T) {
	r := newRS(t, nil)
	got := r.get(apiPath, r.dpopHeaders(apiPath))
	if got.status != 200 {
		t.Fatalf("%d %s", got.status, got.body)
	}
	var body map[string]string
	json.Unmarshal([]byte(got.body), &body)
	if body["sub"] != "alice" || body["client_id"] != "demo" || body["scope"] != "read write" || body["jkt"] != r.signer.JKT() {
		t.Fatalf("principal %v", body)
	}
	// The query string is not part of htu.
	h := map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "GET", apiPath, r.token, "")}}
	if got := r.get(apiPath+"?x=1", h); got.status != 200 {
		t.Fatalf("with a query: %d %s", got.status, got.body)
	}
}

// Checklist 3: no credentials: 401 with a DPoP challenge carrying algs and no
// error.
func TestResourceNoCredentials(t *testing.T) {
	r := newRS(t, func(o *Options) { o.Realm = "api" })
	got := r.get(apiPath, nil)
	wantChallenge(t, got, 401, "")
	if !strings.Contains(got.header.Get("WWW-Authenticate"), `realm="api"`) {
		t.Errorf("no realm: %q", got.header.Get("WWW-Authenticate"))
	}
	wantChallenge(t, r.get(apiPath, map[string][]string{"Authorization": {"Basic YTpi"}}), 401, "")
	// The body has the shape of every other refusal's, without an error
	// code (RFC 6750 §3.1).
	var body map[string]any
	if err := json.Unmarshal([]byte(got.body), &body); err != nil || got.header.Get("Content-Type") != "application/json" {
		t.Fatalf("body %q (%s), want JSON: %v", got.body, got.header.Get("Content-Type"), err)
	}
	if _, ok := body["error"]; ok || body["error_description"] != "an access token is required" || len(body) != 1 {
		t.Errorf("body %v, want only error_description", body)
	}
}

// Checklist 3: every refusal of a request that presented credentials names
// its error: invalid_token, invalid_dpop_proof.
func TestResourceRefusals(t *testing.T) {
	r := newRS(t, nil)
	other := newSigner(t)
	unbound := r.saveToken("", "read")
	otherKeyToken := r.saveToken(other.JKT(), "read")
	for _, tc := range []struct {
		name    string
		headers func() map[string][]string
		status  int
		code    dpop.ErrorCode
	}{
		{"unknown token", func() map[string][]string {
			return map[string][]string{"Authorization": {"DPoP nope"}, "DPoP": {r.proof(r.signer, "GET", apiPath, "nope", "")}}
		}, 401, dpop.CodeInvalidToken},
		{"no proof", func() map[string][]string { return map[string][]string{"Authorization": {"DPoP " + r.token}} }, 401, dpop.CodeInvalidProof},
		{"two proofs", func() map[string][]string {
			h := r.dpopHeaders(apiPath)
			h["DPoP"] = append(h["DPoP"], r.proof(r.signer, "GET", apiPath, r.token, ""))
			return h
		}, 401, dpop.CodeInvalidProof},
		{"proof without ath", func() map[string][]string {
			return map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "GET", apiPath, "", "")}}
		}, 401, dpop.CodeInvalidProof},
		{"ath of another token", func() map[string][]string {
			return map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "GET", apiPath, "other", "")}}
		}, 401, dpop.CodeInvalidProof},
		{"wrong htu", func() map[string][]string {
			return map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "GET", "/api/other", r.token, "")}}
		}, 401, dpop.CodeInvalidProof},
		{"wrong htm", func() map[string][]string {
			return map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "POST", apiPath, r.token, "")}}
		}, 401, dpop.CodeInvalidProof},
		{"proof by another key (cnf.jkt mismatch)", func() map[string][]string {
			return map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(other, "GET", apiPath, r.token, "")}}
		}, 401, dpop.CodeInvalidToken},
		{"token bound to another key", func() map[string][]string {
			return map[string][]string{"Authorization": {"DPoP " + otherKeyToken}, "DPoP": {r.proof(r.signer, "GET", apiPath, otherKeyToken, "")}}
		}, 401, dpop.CodeInvalidToken},
		{"unbound token with the DPoP scheme", func() map[string][]string {
			return map[string][]string{"Authorization": {"DPoP " + unbound}, "DPoP": {r.proof(r.signer, "GET", apiPath, unbound, "")}}
		}, 401, dpop.CodeInvalidToken},
		{"bound token as Bearer (downgrade)", func() map[string][]string {
			return map[string][]string{"Authorization": {"Bearer " + r.token}, "DPoP": {r.proof(r.signer, "GET", apiPath, r.token, "")}}
		}, 401, dpop.CodeInvalidToken},
		{"Bearer not accepted by default", func() map[string][]string {
			return map[string][]string{"Authorization": {"Bearer " + unbound}}
		}, 401, dpop.CodeInvalidToken},
		{"two Authorization headers", func() map[string][]string {
			return map[string][]string{"Authorization": {"DPoP " + r.token, "Bearer " + unbound}, "DPoP": {r.proof(r.signer, "GET", apiPath, r.token, "")}}
		}, 400, dpop.CodeInvalidRequest},
		{"header and query token", func() map[string][]string {
			return map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "GET", apiPath, r.token, "")}, "X-Query": {"access_token"}}
		}, 400, dpop.CodeInvalidRequest},
		{"malformed Authorization", func() map[string][]string {
			return map[string][]string{"Authorization": {"DPoP a b"}, "DPoP": {r.proof(r.signer, "GET", apiPath, "a b", "")}}
		}, 400, dpop.CodeInvalidRequest},
		{"empty token", func() map[string][]string { return map[string][]string{"Authorization": {"DPoP "}} }, 400, dpop.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.headers()
			path := apiPath
			if _, ok := h["X-Query"]; ok {
				path += "?access_token=" + r.token
			}
			wantChallenge(t, r.get(path, h), tc.status, tc.code)
		})
	}
	t.Run("replayed proof", func(t *testing.T) {
		h := r.dpopHeaders(apiPath)
		if got := r.get(apiPath, h); got.status != 200 {
			t.Fatalf("%d %s", got.status, got.body)
		}
		wantChallenge(t, r.get(apiPath, h), 401, dpop.CodeInvalidProof)
	})
	t.Run("revoked token", func(t *testing.T) {
		tok := r.saveToken(r.signer.JKT(), "read")
		r.store.RevokeAccessToken(bg, store.HashToken(tok))
		wantChallenge(t, r.get(apiPath, map[string][]string{"Authorization": {"DPoP " + tok}, "DPoP": {r.proof(r.signer, "GET", apiPath, tok, "")}}), 401, dpop.CodeInvalidToken)
	})
}

// Checklist 3: htu is the configured resource URL, not the Host header.
func TestResourceHTUFromConfiguration(t *testing.T) {
	r := newRS(t, nil)
	req, _ := http.NewRequest("GET", r.ts.URL+apiPath, nil)
	req.Host = "evil.example"
	req.Header.Set("Authorization", "DPoP "+r.token)
	p, _ := r.signer.Proof("GET", "http://evil.example"+apiPath, dpop.ProofOptions{AccessToken: r.token})
	req.Header.Set("DPoP", p)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), string(dpop.CodeInvalidProof)) {
		t.Fatalf("a proof for the client's Host header passed: %d", resp.StatusCode)
	}
}

// Checklist 3: nonce challenge with use_dpop_nonce and DPoP-Nonce; the
// Transport follows it.
func TestResourceNonce(t *testing.T) {
	nonces, err := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: []byte(strings.Repeat("n", 32))})
	if err != nil {
		t.Fatal(err)
	}
	r := newRS(t, func(o *Options) { o.DPoP.Nonces = nonces })
	got := r.get(apiPath, r.dpopHeaders(apiPath))
	wantChallenge(t, got, 401, dpop.CodeUseNonce)
	nonce := got.header.Get("DPoP-Nonce")
	if nonce == "" || len(got.header.Values("DPoP-Nonce")) != 1 {
		t.Fatalf("DPoP-Nonce %q", got.header.Values("DPoP-Nonce"))
	}
	ok := r.get(apiPath, map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "GET", apiPath, r.token, nonce)}})
	if ok.status != 200 || ok.header.Get("DPoP-Nonce") == "" {
		t.Fatalf("%d %v", ok.status, ok.header)
	}
}

// The kit's Transport, with a fresh nonce-requiring resource, recovers from
// the challenge by itself.
func TestResourceNonceTransport(t *testing.T) {
	nonces, _ := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: []byte(strings.Repeat("n", 32))})
	r := newRS(t, func(o *Options) { o.DPoP.Nonces = nonces })
	client := &http.Client{Transport: dpop.NewTransport(r.signer, nil)}
	req, _ := http.NewRequest("GET", r.ts.URL+apiPath, nil)
	req.Header.Set("Authorization", "DPoP "+r.token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("transport did not recover: %d", resp.StatusCode)
	}
}

// Checklist 3: a valid token lacking a scope: 403 insufficient_scope.
func TestResourceInsufficientScope(t *testing.T) {
	r := newRS(t, nil)
	got := r.get("/api/admin", r.dpopHeaders("/api/admin"))
	if got.status != 403 || !strings.Contains(got.header.Get("WWW-Authenticate"), `error="insufficient_scope"`) ||
		!strings.Contains(got.header.Get("WWW-Authenticate"), `scope="admin"`) {
		t.Fatalf("%d %q", got.status, got.header.Get("WWW-Authenticate"))
	}
	admin := r.saveToken(r.signer.JKT(), "admin")
	ok := r.get("/api/admin", map[string][]string{"Authorization": {"DPoP " + admin}, "DPoP": {r.proof(r.signer, "GET", "/api/admin", admin, "")}})
	if ok.status != 200 {
		t.Fatalf("%d %s", ok.status, ok.body)
	}
	// RequireScope alone, without the middleware in front, refuses.
	rec := httptest.NewRecorder()
	RequireScope("read")(http.HandlerFunc(hello)).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 401 {
		t.Fatalf("RequireScope without a principal: %d", rec.Code)
	}
}

// Checklist 3: accepting unbound Bearer tokens is an explicit opt-in.
func TestResourceBearerOptIn(t *testing.T) {
	r := newRS(t, func(o *Options) { o.AllowBearer = true })
	unbound := r.saveToken("", "read")
	if got := r.get(apiPath, map[string][]string{"Authorization": {"Bearer " + unbound}}); got.status != 200 {
		t.Fatalf("Bearer token refused with AllowBearer: %d %s", got.status, got.body)
	}
	got := r.get(apiPath, map[string][]string{"Authorization": {"Bearer " + r.token}})
	wantChallenge(t, got, 401, dpop.CodeInvalidToken)
	if !strings.Contains(got.header.Get("WWW-Authenticate"), ", Bearer") {
		t.Errorf("no Bearer challenge: %q", got.header.Get("WWW-Authenticate"))
	}
}

// Checklist 3: one proof presented by 32 goroutines at once: exactly one
// request succeeds.
func TestResourceConcurrentProof(t *testing.T) {
	r := newRS(t, nil)
	h := r.dpopHeaders(apiPath)
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 32 {
		wg.Go(func() {
			<-start
			switch got := r.get(apiPath, h); got.status {
			case 200:
				ok.Add(1)
			case 401:
				refused.Add(1)
			default:
				t.Errorf("%d", got.status)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok.Load() != 1 || refused.Load() != 31 {
		t.Fatalf("%d succeeded, %d refused; want 1 and 31", ok.Load(), refused.Load())
	}
}

// The error handler hook sees the cause.
func TestResourceErrorHandler(t *testing.T) {
	var causes []error
	var mu sync.Mutex
	r := newRS(t, func(o *Options) {
		o.ErrorHandler = func(w http.ResponseWriter, req *http.Request, e *Error) {
			mu.Lock()
			causes = append(causes, e)
			mu.Unlock()
			w.WriteHeader(418)
		}
	})
	if got := r.get(apiPath, map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "GET", "/x", r.token, "")}}); got.status != 418 {
		t.Fatalf("%d", got.status)
	}
	r.get(apiPath, nil)
	// A proof by another key than the token's binding: the one
	// ErrKeyMismatch, dpop's.
	r.get(apiPath, map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(newSigner(t), "GET", apiPath, r.token, "")}})
	if len(causes) != 3 || !errors.Is(causes[0], dpop.ErrHTU) || !errors.Is(causes[1], ErrNoCredentials) || !errors.Is(causes[2], dpop.ErrKeyMismatch) {
		t.Fatalf("causes %v", causes)
	}
}

// failingTokens is a store that is down.
type failingTokens struct{ *store.Memory }

func (failingTokens) GetAccessToken(context.Context, store.TokenHash) (*store.AccessToken, error) {
	return nil, errors.New("connection refused")
}

// Checklist 5: a store that is down fails closed with 503.
func TestResourceStoreDown(t *testing.T) {
	r := newRS(t, func(o *Options) {})
	mw, err := New(Options{ResourceURL: r.ts.URL, Validator: StoreValidator{Store: failingTokens{r.store}}})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", apiPath, nil)
	for k, v := range r.dpopHeaders(apiPath) {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	mw(http.HandlerFunc(hello)).ServeHTTP(rec, req)
	if rec.Code != 503 {
		t.Fatalf("%d", rec.Code)
	}
}

func TestPrincipalFrom(t *testing.T) {
	if p, ok := PrincipalFrom(context.Background()); ok || p != nil {
		t.Fatal("principal in an empty context")
	}
	var nilCtx context.Context // a nil context must not panic
	if _, ok := PrincipalFrom(nilCtx); ok {
		t.Fatal("principal in a nil context")
	}
	ctx := WithPrincipal(context.Background(), &Principal{Subject: "a", Scopes: []string{"x"}})
	if p, ok := PrincipalFrom(ctx); !ok || p.Subject != "a" || !p.HasScope("x") || p.HasScope("y") {
		t.Fatal("principal lost")
	}
	if _, ok := PrincipalFrom(WithPrincipal(context.Background(), nil)); ok {
		t.Fatal("nil principal reported")
	}
}

func TestOptionsRefused(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	sv := StoreValidator{Store: m}
	for name, tc := range map[string]struct {
		o    Options
		want string
	}{
		"no URL":         {Options{Validator: sv}, "ResourceURL"},
		"no validator":   {Options{ResourceURL: "https://api.example"}, "Validator"},
		"bad URL":        {Options{ResourceURL: "api.example", Validator: sv}, "BaseURL"},
		"quote realm":    {Options{ResourceURL: "https://api.example", Validator: sv, Realm: `a"b`}, "Realm"},
		"empty audience": {Options{ResourceURL: "https://api.example", Validator: sv, Audiences: []string{"https://api.example", ""}}, "Audiences"},
		"alg none":       {Options{ResourceURL: "https://api.example", Validator: sv, DPoP: dpop.VerifierOptions{Algorithms: []string{"none"}}}, `"none"`},
		// Without a store, the first request would panic on a nil pointer.
		"StoreValidator without a store":     {Options{ResourceURL: "https://api.example", Validator: StoreValidator{}}, "without a Store"},
		"*StoreValidator without a store":    {Options{ResourceURL: "https://api.example", Validator: &StoreValidator{}}, "without a Store"},
		"nil *StoreValidator":                {Options{ResourceURL: "https://api.example", Validator: (*StoreValidator)(nil)}, "without a Store"},
		"nil *JWTValidator":                  {Options{ResourceURL: "https://api.example", Validator: (*JWTValidator)(nil)}, "nil *JWTValidator"},
		"nil *IntrospectionValidator":        {Options{ResourceURL: "https://api.example", Validator: (*IntrospectionValidator)(nil)}, "nil *IntrospectionValidator"},
		"negative MaxProofSize passed along": {Options{ResourceURL: "https://api.example", Validator: sv, DPoP: dpop.VerifierOptions{MaxProofSize: -1}}, "negative"},
	} {
		if _, err := New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, tc.want)
		}
	}
	if _, err := New(Options{ResourceURL: "https://api.example", Validator: &StoreValidator{Store: m}}); err != nil {
		t.Errorf("*StoreValidator with a store: %v", err)
	}
}

// Checklist 3: CORS exposes WWW-Authenticate and DPoP-Nonce.
func TestExposeDPoPHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Origin", "https://app.example")
	ExposeDPoPHeaders(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(401) })).ServeHTTP(rec, req)
	if got := rec.Header().Get("Access-Control-Expose-Headers"); !strings.Contains(got, "WWW-Authenticate") || !strings.Contains(got, "DPoP-Nonce") {
		t.Fatalf("expose %q", got)
	}
	if len(CORSHeaders.Request) != 2 || len(CORSHeaders.Response) != 2 {
		t.Fatal(CORSHeaders)
	}
}

// RFC 9728 metadata.
func TestMetadataHandler(t *testing.T) {
	h, err := MetadataHandler(ResourceMetadata{Resource: "https://api.example.com/v1", AuthorizationServers: []string{"https://as.example.com"}, DPoPBoundTokensRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	algs, _ := m["dpop_signing_alg_values_supported"].([]any)
	if m["resource"] != "https://api.example.com/v1" || m["dpop_bound_access_tokens_required"] != true || len(algs) != len(dpop.DefaultAlgorithms()) ||
		m["authorization_servers"].([]any)[0] != "https://as.example.com" {
		t.Fatalf("metadata %v", m)
	}
	if MetadataPath("https://api.example.com/v1") != "/.well-known/oauth-protected-resource/v1" || MetadataPath("https://api.example.com") != "/.well-known/oauth-protected-resource" {
		t.Fatal(MetadataPath("https://api.example.com/v1"))
	}
	if _, err := MetadataHandler(ResourceMetadata{Resource: "api"}); err == nil {
		t.Fatal("relative resource accepted")
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	if rec.Code != 405 {
		t.Fatal(rec.Code)
	}
}
