package handlers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/store"
)

// Test fixtures shared by every handler test: a Server on the in-memory
// store behind an httptest server, three registered clients and a DPoP key.

const (
	confID       = "conf" // confidential, DPoP-bound, every grant
	confSecret   = "conf-secret-0123456789abcdef"
	pubID        = "pub"    // public, DPoP-bound, code + refresh
	bearerID     = "bearer" // confidential, not DPoP-bound
	bearerSecret = "bearer-secret-0123456789abcdef"
	redirectURI  = "https://app.example/cb"
)

type harness struct {
	t      *testing.T
	srv    *Server
	store  *store.Memory
	ts     *httptest.Server
	signer *dpop.Signer
}

// newHarness starts a server; edit may change the configuration first.
func newHarness(t *testing.T, edit func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t}
	// The handler is set once the server's URL (the issuer) is known; an
	// atomic makes that visible to requests from other processes (curl).
	var handler atomic.Pointer[http.ServeMux]
	h.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mux := handler.Load(); mux != nil {
			mux.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(h.ts.Close)
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	h.store = m
	ctx := context.Background()
	for _, c := range []*store.Client{
		{ID: confID, SecretHash: store.HashSecret(confSecret), GrantTypes: []string{"client_credentials", "authorization_code", "refresh_token"},
			RedirectURIs: []string{redirectURI}, Scopes: []string{"read", "write"}, DPoPBound: true,
			Resources: []string{rvAudience, h.ts.URL}, Introspect: true},
		{ID: pubID, GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{redirectURI, "http://127.0.0.1:8765/callback"},
			Scopes: []string{"read", "write"}, DPoPBound: true},
		{ID: bearerID, SecretHash: store.HashSecret(bearerSecret), GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"},
			Resources: []string{rvAudience, h.ts.URL}, Introspect: true},
	} {
		if err := m.SaveClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Issuer: h.ts.URL, Store: m, Authenticate: testAuthenticate}
	if edit != nil {
		edit(&cfg)
	}
	h.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.srv.Mount(mux)
	handler.Store(mux)
	h.signer = newSigner(t)
	return h
}

// newSigner is a signer with a fresh ES256 key.
func newSigner(t testing.TB) *dpop.Signer { t.Helper(); return dpoptest.NewSigner(t) }

// testAuthenticate is the host's login: Basic alice/wonderland, or a
// redirect to /login when the request asks for one.
func testAuthenticate(w http.ResponseWriter, r *http.Request, _ *AuthorizationRequest) (string, bool, error) {
	if r.Header.Get("X-Login") == "redirect" {
		http.Redirect(w, r, "/login", http.StatusFound)
		return "", true, nil
	}
	if u, p, ok := r.BasicAuth(); ok && u == "alice" && p == "wonderland" {
		return "alice", false, nil
	}
	return "", false, nil
}

// proof is a fresh proof by the harness key for a request to path.
func (h *harness) proof(method, path string, opts dpop.ProofOptions) string {
	h.t.Helper()
	return proofBy(h.t, h.signer, method, h.ts.URL+path, opts)
}

// proofBy is a fresh proof by s for method and the absolute URL u.
func proofBy(t testing.TB, s *dpop.Signer, method, u string, opts dpop.ProofOptions) string {
	t.Helper()
	return dpoptest.Proof(t, s, method, u, opts)
}

// response is a decoded reply.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r response) str(k string) string { s, _ := r.body[k].(string); return s }

// do sends a request to the test server without following redirects.
func (h *harness) do(req *http.Request) response {
	h.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	json.Unmarshal(raw, &out.body)
	return out
}

// postForm posts form to path with extra headers (a "DPoP" entry is the
// proof; "basic" is "id:secret" for HTTP Basic).
func (h *harness) postForm(path string, form url.Values, headers map[string]string) response {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.ts.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	setHeaders(req, headers)
	return h.do(req)
}

// postBasic posts form to path, authenticated with HTTP Basic as basic
// ("id:secret"), or with nothing when basic is empty.
func (h *harness) postBasic(path string, form url.Values, basic string) response {
	h.t.Helper()
	headers := map[string]string{}
	if basic != "" {
		headers["basic"] = basic
	}
	return h.postForm(path, form, headers)
}

// setHeaders sets headers on req; a "basic" entry is "id:secret" for HTTP
// Basic.
func setHeaders(req *http.Request, headers map[string]string) {
	for k, v := range headers {
		if k == "basic" {
			id, secret, _ := strings.Cut(v, ":")
			req.SetBasicAuth(id, secret)
			continue
		}
		req.Header.Set(k, v)
	}
}

// wrappedHarness is a harness whose memory store is wrapped by wrap (a store
// that counts or fails calls), which it returns too.
func wrappedHarness[S store.Store](t *testing.T, wrap func(*store.Memory) S, edit func(*Config)) (*harness, S) {
	var wrapped S
	h := newHarness(t, func(c *Config) {
		wrapped = wrap(c.Store.(*store.Memory))
		c.Store = wrapped
		if edit != nil {
			edit(c)
		}
	})
	return h, wrapped
}

// wantError asserts an RFC 6749 §5.2 error response.
func wantError(t *testing.T, r response, status int, code dpop.ErrorCode) {
	t.Helper()
	if r.status != status || r.str("error") != string(code) {
		t.Fatalf("got %d %s, want %d %q", r.status, r.raw, status, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}
