package handlers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/jose"
	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

func (h *harness) mdRequest(method, path string) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.ts.URL+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.do(req)
}

// mdStrings turns a decoded JSON array into strings.
func mdStrings(v []string) []any {
	out := make([]any, len(v))
	for i, s := range v {
		out[i] = s
	}
	return out
}

// mdWant is the whole metadata document expected of a server whose issuer
// is iss, with a store that keeps pushed authorization requests (the
// memory store does).
func mdWant(iss string, p Paths, algs []string, jwt bool) map[string]any {
	par := p.PushedAuthorization
	if par == "" {
		par = DefaultPaths.PushedAuthorization
	}
	m := map[string]any{
		"pushed_authorization_request_endpoint":                    iss + par,
		"issuer":                                                   iss,
		"authorization_endpoint":                                   iss + p.Authorize,
		"token_endpoint":                                           iss + p.Token,
		"revocation_endpoint":                                      iss + p.Revoke,
		"introspection_endpoint":                                   iss + p.Introspect,
		"response_types_supported":                                 []any{"code"},
		"response_modes_supported":                                 []any{"query"},
		"grant_types_supported":                                    []any{"authorization_code", "client_credentials", "refresh_token"},
		"token_endpoint_auth_methods_supported":                    []any{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"revocation_endpoint_auth_methods_supported":               []any{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"introspection_endpoint_auth_methods_supported":            []any{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported":         mdStrings(jose.Names()),
		"revocation_endpoint_auth_signing_alg_values_supported":    mdStrings(jose.Names()),
		"introspection_endpoint_auth_signing_alg_values_supported": mdStrings(jose.Names()),
		"code_challenge_methods_supported":                         []any{"S256"},
		"dpop_signing_alg_values_supported":                        mdStrings(algs),
		"authorization_response_iss_parameter_supported":           true,
	}
	if jwt {
		m["jwks_uri"] = iss + p.JWKS
	}
	return m
}

func TestMetadata(t *testing.T) {
	custom := Paths{Token: "/t", Authorize: "/a", Revoke: "/r", Introspect: "/i", JWKS: "/k", Metadata: "/meta"}
	tests := []struct {
		name  string
		edit  func(t *testing.T, c *Config)
		paths Paths
		algs  []string // nil: the verifier's defaults
		jwt   bool
	}{
		{"opaque tokens, no jwks_uri", nil, DefaultPaths, nil, false},
		{"JWT tokens advertise the JWKS", func(t *testing.T, c *Config) { ixJWTConfig(t, c) }, DefaultPaths, nil, true},
		{"configured paths", func(t *testing.T, c *Config) { c.Paths = custom; ixJWTConfig(t, c) }, custom, nil, true},
		{"configured proof algorithms", func(t *testing.T, c *Config) { c.DPoP.Algorithms = []string{dpop.ES256, dpop.EdDSA} },
			DefaultPaths, []string{dpop.ES256, dpop.EdDSA}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				if tc.edit != nil {
					tc.edit(t, c)
				}
			})
			algs := tc.algs
			if algs == nil {
				algs = dpop.DefaultAlgorithms()
			}
			if got := h.srv.Verifier().Algorithms(); !reflect.DeepEqual(got, algs) {
				t.Fatalf("verifier algorithms %v, want %v", got, algs)
			}
			r := h.mdRequest(http.MethodGet, tc.paths.Metadata)
			if r.status != http.StatusOK {
				t.Fatalf("got %d %s", r.status, r.raw)
			}
			if want := mdWant(h.ts.URL, tc.paths, algs, tc.jwt); !reflect.DeepEqual(r.body, want) {
				t.Errorf("got  %s\nwant %v", r.raw, want)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := r.header.Get("Cache-Control"); cc != "public, max-age=300" {
				t.Errorf("Cache-Control %q", cc)
			}
			// Every endpoint it names is served (none answers 404).
			for _, k := range []string{"token_endpoint", "revocation_endpoint", "introspection_endpoint", "jwks_uri"} {
				u, _ := r.body[k].(string)
				if u == "" {
					continue
				}
				if got := h.mdRequest(http.MethodGet, strings.TrimPrefix(u, h.ts.URL)); got.status == http.StatusNotFound {
					t.Errorf("%s %s is not served", k, u)
				}
			}
		})
	}
}

// The issuer may have a path; every endpoint lies under it (RFC 8414 §2).
func TestMetadataIssuerWithPath(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	srv, err := New(Config{Issuer: "https://as.example/tenant-1/", Store: m, Authenticate: testAuthenticate})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	srv.MetadataHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/.well-known/oauth-authorization-server", nil))
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if want := mdWant("https://as.example/tenant-1", DefaultPaths, dpop.DefaultAlgorithms(), false); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %s\nwant %v", w.Body, want)
	}
}

func TestMetadataMethods(t *testing.T) {
	h := newHarness(t, func(c *Config) { ixJWTConfig(t, c) })
	for _, path := range []string{DefaultPaths.Metadata, DefaultPaths.JWKS} {
		t.Run(path, func(t *testing.T) {
			full := h.mdRequest(http.MethodGet, path)
			head := h.mdRequest(http.MethodHead, path)
			if head.status != http.StatusOK || head.raw != "" {
				t.Errorf("HEAD: %d %q", head.status, head.raw)
			}
			for _, k := range []string{"Content-Type", "Cache-Control"} {
				if head.header.Get(k) != full.header.Get(k) {
					t.Errorf("HEAD %s %q, GET %q", k, head.header.Get(k), full.header.Get(k))
				}
			}
			if cl := head.header.Get("Content-Length"); cl != strconv.Itoa(len(full.raw)) {
				t.Errorf("HEAD Content-Length %q, GET body %d bytes", cl, len(full.raw))
			}
			for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
				r := h.mdRequest(m, path)
				wantError(t, r, http.StatusMethodNotAllowed, dpop.CodeInvalidRequest)
				if a := r.header.Get("Allow"); a != "GET, HEAD" {
					t.Errorf("%s: Allow %q", m, a)
				}
			}
		})
	}
}

// jwkPrivateMembers are the JWK members that hold secrets (RFC 7518 §6.2.2,
// §6.3.2, §6.4.1; RFC 8037 §2).
var jwkPrivateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

func TestJWKS(t *testing.T) {
	// The signing key and a second (verification-only) EC key. A symmetric
	// key is refused by New (TestConfigRefused), so it cannot be published.
	signing := ixSigningKey(t, "k-sign")
	raw384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := jwk.FromRaw(raw384)
	second.Set(jwk.KeyIDKey, "k-old")
	second.Set(jwk.AlgorithmKey, jwa.ES384)
	set := jwk.NewSet()
	for _, k := range []jwk.Key{signing, second} {
		if err := set.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t, func(c *Config) { c.AccessTokenFormat, c.SigningKeys = FormatJWT, set })

	r := h.mdRequest(http.MethodGet, DefaultPaths.JWKS)
	if r.status != http.StatusOK {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Errorf("Cache-Control %q", cc)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(r.raw), &doc); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range doc.Keys {
		kid, _ := k["kid"].(string)
		kids = append(kids, kid)
		for _, m := range jwkPrivateMembers {
			if _, ok := k[m]; ok {
				t.Errorf("key %q publishes private member %q", kid, m)
			}
		}
		if k["kty"] != "EC" || k["alg"] == nil || k["x"] == nil {
			t.Errorf("key %q is not a public EC key with alg: %v", kid, k)
		}
	}
	if want := []string{"k-sign", "k-old"}; !reflect.DeepEqual(kids, want) {
		t.Errorf("kids %v, want %v", kids, want)
	}

	// A resource server verifies access tokens with the set.
	published, err := jwk.Parse([]byte(r.raw))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := h.srv.AccessTokens().Issue(context.Background(), rvAccess(confID, rvGrant, h.signer.JKT()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify([]byte(tok), jws.WithKeySet(published, jws.WithRequireKid(true))); err != nil {
		t.Errorf("token does not verify with the JWKS: %v", err)
	}
}

func TestJWKSWithOpaqueTokens(t *testing.T) {
	h := newHarness(t, nil)
	// Not mounted...
	if r := h.mdRequest(http.MethodGet, DefaultPaths.JWKS); r.status != http.StatusNotFound {
		t.Errorf("mounted: %d %s", r.status, r.raw)
	}
	// ...and 404 when a host mounts it anyway.
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		w := httptest.NewRecorder()
		h.srv.JWKSHandler().ServeHTTP(w, httptest.NewRequest(m, DefaultPaths.JWKS, nil))
		if w.Code != http.StatusNotFound || strings.Contains(w.Body.String(), "keys") {
			t.Errorf("%s: %d %s", m, w.Code, w.Body)
		}
	}
}

// Without Config.Authenticate the server has no authorization code flow,
// and its metadata says so: no authorization_endpoint, no code response
// type, PKCE, response mode or iss parameter, client credentials alone.
func TestMetadataWithoutAuthorizationEndpoint(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Authenticate = nil })
	r := h.mdRequest(http.MethodGet, DefaultPaths.Metadata)
	if r.status != http.StatusOK {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	want := mdWant(h.ts.URL, DefaultPaths, dpop.DefaultAlgorithms(), false)
	for _, k := range []string{"authorization_endpoint", "response_modes_supported", "code_challenge_methods_supported", "authorization_response_iss_parameter_supported",
		"pushed_authorization_request_endpoint"} {
		delete(want, k)
	}
	want["response_types_supported"] = []any{}
	want["grant_types_supported"] = []any{"client_credentials"}
	if !reflect.DeepEqual(r.body, want) {
		t.Errorf("got  %s\nwant %v", r.raw, want)
	}
}
