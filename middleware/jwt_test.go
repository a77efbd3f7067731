package middleware

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// fakeClock is a settable clock shared by a test's servers and validators.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// jwtTestAS is an authorization server issuing JWT access tokens, from
// package handlers, behind a handler that can be swapped (key rotation),
// made to fail (an outage) and counts JWKS fetches.
type jwtTestAS struct {
	ts       *httptest.Server
	clock    *fakeClock
	key      jwk.Key // the current signing key (private)
	srv      atomic.Pointer[handlers.Server]
	handler  atomic.Pointer[http.Handler]
	jwksHits atomic.Int64
	down     atomic.Bool
}

const testJKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"

func newJWTTestAS(t *testing.T) *jwtTestAS {
	t.Helper()
	as := &jwtTestAS{clock: newFakeClock()}
	as.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == handlers.DefaultPaths.JWKS {
			as.jwksHits.Add(1)
			if as.down.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
		}
		(*as.handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(as.ts.Close)
	as.install(t, newSigningKey(t, "k1"))
	return as
}

// install makes a new authorization server whose first (signing) key is
// key, followed by the keys signing before, and serves it.
func (as *jwtTestAS) install(t *testing.T, key jwk.Key) {
	t.Helper()
	set := jwk.NewSet()
	if err := set.AddKey(key); err != nil {
		t.Fatal(err)
	}
	if as.key != nil {
		if err := set.AddKey(as.key); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.NewMemory(store.MemoryOptions{Now: as.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := handlers.New(handlers.Config{Issuer: as.ts.URL, Store: st, AccessTokenFormat: handlers.FormatJWT, SigningKeys: set, Now: as.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Mount(mux)
	var h http.Handler = mux
	as.key = key
	as.srv.Store(srv)
	as.handler.Store(&h)
}

func newSigningKey(t *testing.T, kid string) jwk.Key {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	if err := k.Set(jwk.AlgorithmKey, jwa.ES256); err != nil {
		t.Fatal(err)
	}
	return k
}

// issue has the authorization server issue a DPoP-bound token.
func (as *jwtTestAS) issue(t *testing.T) string {
	t.Helper()
	now := as.clock.Now()
	tok, err := as.srv.Load().AccessTokens().Issue(context.Background(), &store.AccessToken{
		ClientID: "app", Subject: "alice", Scope: "read write", JKT: testJKT, Audience: []string{as.ts.URL},
		IssuedAt: now, ExpiresAt: now.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// publicKeys is the authorization server's current public key set.
func (as *jwtTestAS) publicKeys(t *testing.T) jwk.Set {
	t.Helper()
	pub, err := as.key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	set.AddKey(pub)
	return set
}

// claims are valid claims for a hand-signed token.
func (as *jwtTestAS) claims() map[string]any {
	now := as.clock.Now()
	return map[string]any{
		"iss": as.ts.URL, "sub": "alice", "aud": []string{as.ts.URL},
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "jti": "j1",
		"client_id": "app", "scope": "read write", "cnf": map[string]any{"jkt": testJKT},
	}
}

// with returns the valid claims changed by f.
func (as *jwtTestAS) with(f func(c map[string]any)) map[string]any {
	c := maps.Clone(as.claims())
	f(c)
	return c
}

// sign signs claims (a map, or raw bytes) with key and alg, with typ at+jwt
// and the key's kid unless header overrides them (a nil value removes a
// member).
func sign(t *testing.T, key any, alg jwa.SignatureAlgorithm, header map[string]any, claims any) string {
	t.Helper()
	payload, ok := claims.([]byte)
	if !ok {
		var err error
		if payload, err = json.Marshal(claims); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := header[jws.KeyIDKey]; ok {
		// jws.Sign writes a jwk.Key's own kid; sign with the raw key so
		// that the header's kid (or its absence) stands.
		if k, ok := key.(jwk.Key); ok {
			var raw any
			if err := k.Raw(&raw); err != nil {
				t.Fatal(err)
			}
			key = raw
		}
	}
	h := jws.NewHeaders()
	h.Set(jws.TypeKey, "at+jwt")
	for k, v := range header {
		if v == nil {
			h.Remove(k)
			continue
		}
		if err := h.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// unsecured builds a token with alg none by hand (RFC 7519 §6.1).
func unsecured(header, claims any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func newTestJWTValidator(t *testing.T, opts JWTOptions) *JWTValidator {
	t.Helper()
	v, err := NewJWTValidator(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// jwtValidators are a validator with the keys given and one with the JWKS
// URL, for the same authorization server.
func jwtValidators(t *testing.T, as *jwtTestAS) map[string]*JWTValidator {
	base := JWTOptions{Issuer: as.ts.URL, Now: as.clock.Now}
	withKeys, withURL := base, base
	withKeys.Keys = as.publicKeys(t)
	withURL.JWKSURL = as.ts.URL + handlers.DefaultPaths.JWKS
	return map[string]*JWTValidator{"Keys": newTestJWTValidator(t, withKeys), "JWKSURL": newTestJWTValidator(t, withURL)}
}

func TestJWTValidatorAccepts(t *testing.T) {
	as := newJWTTestAS(t)
	now := as.clock.Now()
	tests := []struct {
		name  string
		token func() string
		want  Principal
	}{
		{"issued by the authorization server", func() string { return as.issue(t) },
			Principal{Subject: "alice", ClientID: "app", Scopes: []string{"read", "write"}, JKT: testJKT, ExpiresAt: now.Add(time.Hour), Audience: []string{as.ts.URL}}},
		{"aud as a string, typ application/at+jwt in capitals", func() string {
			return sign(t, as.key, jwa.ES256, map[string]any{jws.TypeKey: "Application/AT+JWT"}, as.with(func(c map[string]any) { c["aud"] = as.ts.URL }))
		}, Principal{Subject: "alice", ClientID: "app", Scopes: []string{"read", "write"}, JKT: testJKT, ExpiresAt: now.Add(time.Hour), Audience: []string{as.ts.URL}}},
		// aud is the middleware's to judge (Options.Audiences): the
		// validator reports it, or its absence.
		{"aud of another resource, host claims", func() string {
			return sign(t, as.key, jwa.ES256, nil, as.with(func(c map[string]any) {
				c["aud"] = []string{"https://other.example"}
				c["tenant"] = "acme"
				c["roles"] = []string{"reader"}
			}))
		}, Principal{Subject: "alice", ClientID: "app", Scopes: []string{"read", "write"}, JKT: testJKT, ExpiresAt: now.Add(time.Hour),
			Audience: []string{"https://other.example"}, Claims: map[string]any{"tenant": "acme", "roles": []any{"reader"}}}},
		{"no aud", func() string {
			return sign(t, as.key, jwa.ES256, nil, as.with(func(c map[string]any) { delete(c, "aud") }))
		}, Principal{Subject: "alice", ClientID: "app", Scopes: []string{"read", "write"}, JKT: testJKT, ExpiresAt: now.Add(time.Hour)}},
		{"unbound, no scope, aud among others, fractional exp, nbf past", func() string {
			return sign(t, as.key, jwa.ES256, nil, as.with(func(c map[string]any) {
				delete(c, "cnf")
				delete(c, "scope")
				c["aud"] = []string{"https://other.example", as.ts.URL}
				c["exp"] = float64(now.Unix()) + 60.5
				c["nbf"] = now.Add(-time.Minute).Unix()
			}))
		}, Principal{Subject: "alice", ClientID: "app", ExpiresAt: now.Add(60*time.Second + 500*time.Millisecond), Audience: []string{"https://other.example", as.ts.URL}}},
		{"scope split on spaces only", func() string {
			return sign(t, as.key, jwa.ES256, nil, as.with(func(c map[string]any) { c["scope"] = " read\tadmin  write " }))
		}, Principal{Subject: "alice", ClientID: "app", Scopes: []string{"read\tadmin", "write"}, JKT: testJKT, ExpiresAt: now.Add(time.Hour), Audience: []string{as.ts.URL}}},
		{"expired within the leeway, nbf and iat slightly ahead", func() string {
			return sign(t, as.key, jwa.ES256, nil, as.with(func(c map[string]any) {
				c["exp"] = now.Add(-20 * time.Second).Unix()
				c["nbf"] = now.Add(20 * time.Second).Unix()
				c["iat"] = now.Add(20 * time.Second).Unix()
			}))
		}, Principal{Subject: "alice", ClientID: "app", Scopes: []string{"read", "write"}, JKT: testJKT, ExpiresAt: now.Add(-20 * time.Second), Audience: []string{as.ts.URL}}},
	}
	for mode, v := range jwtValidators(t, as) {
		for _, tt := range tests {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				p, err := v.Validate(t.Context(), tt.token())
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if p.Subject != tt.want.Subject || p.ClientID != tt.want.ClientID || p.JKT != tt.want.JKT ||
					strings.Join(p.Scopes, " ") != strings.Join(tt.want.Scopes, " ") || !p.ExpiresAt.Equal(tt.want.ExpiresAt) ||
					!slices.Equal(p.Audience, tt.want.Audience) || (p.Audience == nil) != (tt.want.Audience == nil) || !reflect.DeepEqual(p.Claims, tt.want.Claims) {
					t.Errorf("principal = %+v, want %+v", *p, tt.want)
				}
			})
		}
	}
}

func TestJWTValidatorRefuses(t *testing.T) {
	as := newJWTTestAS(t)
	now := as.clock.Now()
	other := newSigningKey(t, "k1") // another key, the same kid
	p384raw, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(p384raw.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubJWK, _ := as.key.PublicKey()
	pubJSON, _ := json.Marshal(pubJWK)
	valid := as.issue(t)
	parts := strings.Split(valid, ".")
	signedJSON, err := jws.Sign([]byte(`{}`), jws.WithJSON(), jws.WithKey(jwa.ES256, as.key, jws.WithProtectedHeaders(func() jws.Headers {
		h := jws.NewHeaders()
		h.Set(jws.TypeKey, "at+jwt")
		return h
	}())))
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(c map[string]any)) string { return sign(t, as.key, jwa.ES256, nil, as.with(f)) }

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"empty", "", "size out of bounds"},
		{"garbage", "garbage", "not a compact JWS"},
		{"garbage with dots", "a.b.c", "malformed JWS"},
		{"two parts", parts[0] + "." + parts[1], "not a compact JWS"},
		{"JSON serialization", string(signedJSON), "not a compact JWS"},
		{"too large", mod(func(c map[string]any) { c["pad"] = strings.Repeat("x", 17<<10) }), "size out of bounds"},
		{"expired", mod(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }), "expired"},
		{"expired just past the leeway", mod(func(c map[string]any) { c["exp"] = now.Add(-31 * time.Second).Unix() }), "expired"},
		{"missing exp", mod(func(c map[string]any) { delete(c, "exp") }), "exp missing"},
		{"exp in capitals only", mod(func(c map[string]any) { c["EXP"] = c["exp"]; delete(c, "exp") }), "exp missing"},
		{"exp as a string", mod(func(c map[string]any) { c["exp"] = "4102444800" }), "exp is malformed"},
		{"exp null", mod(func(c map[string]any) { c["exp"] = nil }), "exp is malformed"},
		{"exp negative", mod(func(c map[string]any) { c["exp"] = -1 }), "exp is malformed"},
		{"exp beyond year 9999", mod(func(c map[string]any) { c["exp"] = 1e12 }), "exp is malformed"},
		{"nbf in the future", mod(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), "not yet valid"},
		{"nbf as a string", mod(func(c map[string]any) { c["nbf"] = "0" }), "nbf is malformed"},
		{"iat missing", mod(func(c map[string]any) { delete(c, "iat") }), "iat missing"},
		{"iat in the future", mod(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() }), "issued in the future"},
		{"wrong iss", mod(func(c map[string]any) { c["iss"] = "https://evil.example" }), "wrong issuer"},
		{"iss with a trailing slash", mod(func(c map[string]any) { c["iss"] = as.ts.URL + "/" }), "wrong issuer"},
		{"iss as a number", mod(func(c map[string]any) { c["iss"] = 1 }), "iss is malformed"},
		{"aud with a number", mod(func(c map[string]any) { c["aud"] = []any{as.ts.URL, 1} }), "aud is malformed"},
		{"aud as an object", mod(func(c map[string]any) { c["aud"] = map[string]any{as.ts.URL: true} }), "aud is malformed"},
		{"sub missing", mod(func(c map[string]any) { delete(c, "sub") }), "sub missing"},
		{"sub as a number", mod(func(c map[string]any) { c["sub"] = 7 }), "sub is malformed"},
		{"sub null", mod(func(c map[string]any) { c["sub"] = nil }), "sub is malformed"},
		{"client_id missing", mod(func(c map[string]any) { delete(c, "client_id") }), "client_id missing"},
		{"scope as an array", mod(func(c map[string]any) { c["scope"] = []string{"read"} }), "scope is malformed"},
		{"jti as a number", mod(func(c map[string]any) { c["jti"] = 1 }), "jti is malformed"},
		{"cnf.jkt as a number", mod(func(c map[string]any) { c["cnf"] = map[string]any{"jkt": 1} }), "cnf is malformed"},
		{"cnf.jkt empty", mod(func(c map[string]any) { c["cnf"] = map[string]any{"jkt": ""} }), "cnf is malformed"},
		{"cnf bound another way", mod(func(c map[string]any) { c["cnf"] = map[string]any{"x5t#S256": "abc"} }), "cnf is malformed"},
		{"cnf with jkt and more", mod(func(c map[string]any) { c["cnf"] = map[string]any{"jkt": testJKT, "jwk": map[string]any{}} }), "cnf is malformed"},
		{"cnf as a string", mod(func(c map[string]any) { c["cnf"] = testJKT }), "cnf is malformed"},
		{"claims an array", sign(t, as.key, jwa.ES256, nil, []byte(`[]`)), "claims are not a JSON object"},
		{"claims null", sign(t, as.key, jwa.ES256, nil, []byte(`null`)), "claims are not a JSON object"},
		{"claims not JSON", sign(t, as.key, jwa.ES256, nil, []byte(`not json`)), "claims are not a JSON object"},
		{"typ JWT", sign(t, as.key, jwa.ES256, map[string]any{jws.TypeKey: "JWT"}, as.claims()), "typ is not at+jwt"},
		{"typ missing", sign(t, as.key, jwa.ES256, map[string]any{jws.TypeKey: nil}, as.claims()), "typ is not at+jwt"},
		{"typ dpop+jwt", sign(t, as.key, jwa.ES256, map[string]any{jws.TypeKey: "dpop+jwt"}, as.claims()), "typ is not at+jwt"},
		{"crit header", sign(t, as.key, jwa.ES256, map[string]any{jws.CriticalKey: []string{"exp"}, "exp": 1}, as.claims()), "crit header not supported"},
		// An unsecured JWT has an empty signature segment, which the JOSE
		// profile refuses before reading the header.
		{"alg none", unsecured(map[string]any{"alg": "none", "typ": "at+jwt", "kid": "k1"}, as.claims()), "not a compact JWS"},
		{"alg none with the valid signature", b64(map[string]any{"alg": "none", "typ": "at+jwt", "kid": "k1"}) + "." + parts[1] + "." + parts[2], "alg not allowed"},
		{"HS256 with the public JWK as secret", sign(t, pubJSON, jwa.HS256, map[string]any{jws.KeyIDKey: "k1"}, as.claims()), "alg not allowed"},
		{"HS256 with public key DER as secret", sign(t, pubDER, jwa.HS256, map[string]any{jws.KeyIDKey: "k1"}, as.claims()), "alg not allowed"},
		{"ES384 with another key under the kid", sign(t, p384raw, jwa.ES384, map[string]any{jws.KeyIDKey: "k1"}, as.claims()), "key does not fit alg"},
		{"unknown kid", sign(t, as.key, jwa.ES256, map[string]any{jws.KeyIDKey: "k9"}, as.claims()), "unknown kid"},
		{"kid missing", sign(t, as.key, jwa.ES256, map[string]any{jws.KeyIDKey: nil}, as.claims()), "kid missing"},
		{"another key with the same kid", sign(t, other, jwa.ES256, nil, as.claims()), "signature does not verify"},
		{"tampered payload", parts[0] + "." + b64(as.with(func(c map[string]any) { c["sub"] = "mallory" })) + "." + parts[2], "signature does not verify"},
		{"tampered header", b64(map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": "k1", "x": 1}) + "." + parts[1] + "." + parts[2], "signature does not verify"},
		{"signature removed", parts[0] + "." + parts[1] + ".", "not a compact JWS"},
		{"payload removed", parts[0] + ".." + parts[2], "not a compact JWS"},
		{"line break in a segment", parts[0] + "." + parts[1][:8] + "\n" + parts[1][8:] + "." + parts[2], "not a compact JWS"},
		{"padding", valid + "==", "not a compact JWS"},
		{"duplicate alg", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"at+jwt","kid":"k1","alg":"ES256"}`)) + "." + parts[1] + "." + parts[2], "malformed JWS"},
		{"b64 header", sign(t, as.key, jwa.ES256, map[string]any{"b64": true}, as.claims()), "b64 header not supported"},
		{"duplicate exp", sign(t, as.key, jwa.ES256, nil, []byte(`{"exp":1,"exp":4102444800}`)), "exp is given twice"},
		{"iat negative", mod(func(c map[string]any) { c["iat"] = -1 }), "iat is malformed"},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(as.issue(t), ".")[2], "signature does not verify"},
	}
	for mode, v := range jwtValidators(t, as) {
		for _, tt := range tests {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				p, err := v.Validate(t.Context(), tt.token)
				if !errors.Is(err, ErrInvalidToken) || p != nil {
					t.Fatalf("Validate = %v, %v; want ErrInvalidToken", p, err)
				}
				if !strings.HasSuffix(err.Error(), "jwt: "+tt.reason) {
					t.Errorf("refused for %q, want %q", err, tt.reason)
				}
				if errors.Is(err, ErrValidatorUnavailable) {
					t.Errorf("error %v is also unavailable", err)
				}
				if tt.token != "" && len(tt.token) > 8 && strings.Contains(err.Error(), tt.token[len(tt.token)-8:]) {
					t.Errorf("error %q echoes the token", err)
				}
			})
		}
	}
	// The valid token really is valid: the refusals above are about what
	// each case changed.
	for mode, v := range jwtValidators(t, as) {
		if _, err := v.Validate(t.Context(), valid); err != nil {
			t.Errorf("%s: valid token refused: %v", mode, err)
		}
	}
}

func TestJWTValidatorAlgorithms(t *testing.T) {
	as := newJWTTestAS(t)
	v := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, Keys: as.publicKeys(t), Algorithms: []string{"RS256", "EdDSA"}, Now: as.clock.Now})
	if _, err := v.Validate(t.Context(), as.issue(t)); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("ES256 token with RS256/EdDSA allowed: %v, want ErrInvalidToken", err)
	}
	v = newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, Keys: as.publicKeys(t), Algorithms: []string{"ES256"}, Now: as.clock.Now})
	if _, err := v.Validate(t.Context(), as.issue(t)); err != nil {
		t.Errorf("ES256 token with ES256 allowed: %v", err)
	}
}

func TestNewJWTValidatorOptions(t *testing.T) {
	as := newJWTTestAS(t)
	keys := as.publicKeys(t)
	private := jwk.NewSet()
	private.AddKey(as.key)
	secret, _ := jwk.FromRaw([]byte("0123456789abcdef0123456789abcdef"))
	secret.Set(jwk.KeyIDKey, "k1")
	symmetric := jwk.NewSet()
	symmetric.AddKey(secret)
	noKid, _ := as.key.PublicKey()
	noKid.Remove(jwk.KeyIDKey)
	noKids := jwk.NewSet()
	noKids.AddKey(noKid)
	jwks := as.ts.URL + handlers.DefaultPaths.JWKS
	tests := []struct {
		name string
		opts JWTOptions
		ok   bool
	}{
		{"keys", JWTOptions{Issuer: "i", Keys: keys}, true},
		{"private keys reduced to public", JWTOptions{Issuer: "i", Keys: private}, true},
		{"JWKS URL", JWTOptions{Issuer: "i", JWKSURL: jwks}, true},
		{"no issuer", JWTOptions{Keys: keys}, false},
		{"neither keys nor URL", JWTOptions{Issuer: "i"}, false},
		{"empty key set", JWTOptions{Issuer: "i", Keys: jwk.NewSet()}, false},
		{"both keys and URL", JWTOptions{Issuer: "i", Keys: keys, JWKSURL: jwks}, false},
		{"http URL not on loopback", JWTOptions{Issuer: "i", JWKSURL: "http://as.example/jwks"}, false},
		{"relative URL", JWTOptions{Issuer: "i", JWKSURL: "/jwks"}, false},
		{"URL with user info", JWTOptions{Issuer: "i", JWKSURL: "https://u:p@as.example/jwks"}, false},
		{"symmetric key", JWTOptions{Issuer: "i", Keys: symmetric}, false},
		{"key without kid", JWTOptions{Issuer: "i", Keys: noKids}, false},
		{"alg none", JWTOptions{Issuer: "i", Keys: keys, Algorithms: []string{"none"}}, false},
		{"alg HS256", JWTOptions{Issuer: "i", Keys: keys, Algorithms: []string{"ES256", "HS256"}}, false},
		{"alg in lower case", JWTOptions{Issuer: "i", Keys: keys, Algorithms: []string{"es256"}}, false},
		{"negative leeway", JWTOptions{Issuer: "i", Keys: keys, Leeway: -time.Second}, false},
		{"negative cache size", JWTOptions{Issuer: "i", Keys: keys, CacheSize: -1}, false},
		{"negative cache TTL", JWTOptions{Issuer: "i", Keys: keys, CacheTTL: -time.Second}, false},
		{"cache off", JWTOptions{Issuer: "i", Keys: keys, DisableCache: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewJWTValidator(t.Context(), tt.opts)
			if (err == nil) != tt.ok || (err == nil) != (v != nil) {
				t.Errorf("NewJWTValidator = %v, %v; want ok %v", v, err, tt.ok)
			}
		})
	}
	// The validator built from private keys holds only public ones.
	v, err := NewJWTValidator(t.Context(), JWTOptions{Issuer: "i", Keys: private})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := v.keys.static.Key(0)
	if isPrivate, err := jwk.IsPrivateKey(k); err != nil || isPrivate {
		t.Errorf("validator keeps a private key (%v)", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := NewJWTValidator(ctx, JWTOptions{Issuer: "i", JWKSURL: jwks}); err == nil {
		t.Error("NewJWTValidator with a done context succeeded")
	}
}

func TestJWTValidatorConcurrent(t *testing.T) {
	as := newJWTTestAS(t)
	var wg sync.WaitGroup
	for mode, v := range jwtValidators(t, as) {
		tok := as.issue(t)
		bad := sign(t, as.key, jwa.ES256, map[string]any{jws.KeyIDKey: "nope"}, as.claims())
		for i := range 32 {
			wg.Go(func() {
				if i%2 == 0 {
					if _, err := v.Validate(t.Context(), tok); err != nil {
						t.Errorf("%s: %v", mode, err)
					}
					return
				}
				if _, err := v.Validate(t.Context(), bad); !errors.Is(err, ErrInvalidToken) {
					t.Errorf("%s: bad token = %v", mode, err)
				}
			})
		}
	}
	wg.Wait()
}

// The result cache: a token validated once is trusted from the cache until
// min(exp, CacheTTL), and returned as a copy.
func TestJWTValidatorResultCache(t *testing.T) {
	as := newJWTTestAS(t)
	tok := as.issue(t)
	v := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, Now: as.clock.Now, Keys: as.publicKeys(t), CacheTTL: 2 * time.Minute})
	p, err := v.Validate(bg, tok)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := v.results.Peek(sha256.Sum256([]byte(tok)))
	if !ok || !r.until.Equal(as.clock.Now().Add(2*time.Minute)) {
		t.Fatalf("cached until %v, want now + CacheTTL", r.until)
	}
	p.Scopes[0] = "admin"
	again, err := v.Validate(bg, tok)
	if err != nil || again.Scopes[0] != "read" {
		t.Fatalf("cached result %v, %v (a caller's change leaked into the cache?)", again, err)
	}
	// Past CacheTTL the entry is not used: a tampered copy of the cache
	// entry would otherwise still answer.
	v.results.Add(sha256.Sum256([]byte("forged")), jwtResult{p: Principal{Subject: "mallory"}, until: as.clock.Now().Add(time.Second)})
	if p, err := v.Validate(bg, "forged"); err != nil || p.Subject != "mallory" {
		t.Fatalf("cache not consulted: %v %v", p, err)
	}
	as.clock.Advance(2 * time.Second)
	if _, err := v.Validate(bg, "forged"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("lapsed cache entry used: %v", err)
	}
	// Never past exp, whatever CacheTTL says.
	long := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, Now: as.clock.Now, Keys: as.publicKeys(t), CacheTTL: 24 * time.Hour})
	fresh := as.issue(t)
	if _, err := long.Validate(bg, fresh); err != nil {
		t.Fatal(err)
	}
	as.clock.Advance(2 * time.Hour)
	if _, err := long.Validate(bg, fresh); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired token from the cache: %v", err)
	}
	// DisableCache turns the cache off.
	off := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, Now: as.clock.Now, Keys: as.publicKeys(t), DisableCache: true})
	if off.results != nil {
		t.Fatal("cache not off")
	}
}

// Whatever signing key package handlers accepts, the validator accepts the
// tokens it signs, by Keys and by JWKS URL: one JOSE profile on both sides.
func TestJWTValidatorAcceptsEveryKeyHandlersAccepts(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		alg string
		raw any
	}{
		{"ES256", p256}, {"ES384", p384}, {"ES512", p521},
		{"RS256", rsa2048}, {"RS384", rsa2048}, {"RS512", rsa2048},
		{"PS256", rsa2048}, {"PS384", rsa2048}, {"PS512", rsa2048},
		{"EdDSA", ed}, {"Ed25519", ed},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			as := newJWTTestAS(t)
			k, err := jwk.FromRaw(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			k.Set(jwk.KeyIDKey, "k-"+tc.alg)
			k.Set(jwk.AlgorithmKey, tc.alg)
			as.install(t, k)
			tok := as.issue(t)
			for mode, v := range jwtValidators(t, as) {
				if _, err := v.Validate(t.Context(), tok); err != nil {
					t.Errorf("%s: token signed with %s refused: %v", mode, tc.alg, err)
				}
			}
		})
	}
}

// Each refusal of a JWT access token reaches the ErrorHandler with its own
// sentinel cause, besides ErrInvalidToken, and no other.
func TestJWTRefusalCauses(t *testing.T) {
	as := newJWTTestAS(t)
	now := as.clock.Now()
	pubJWK, _ := as.key.PublicKey()
	pubJSON, _ := json.Marshal(pubJWK)
	parts := strings.Split(as.issue(t), ".")
	mod := func(f func(c map[string]any)) string { return sign(t, as.key, jwa.ES256, nil, as.with(f)) }
	v := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, Now: as.clock.Now, Keys: as.publicKeys(t)})
	var got *Error
	// The API answers to the tokens' aud: every refusal below is for what
	// its case changed.
	mw, err := New(Options{ResourceURL: "https://api.example", Audiences: []string{as.ts.URL}, Validator: v, ErrorHandler: func(w http.ResponseWriter, _ *http.Request, e *Error) {
		got = e
		WriteError(w, nil, e)
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("request let through") }))
	sentinels := []error{ErrTokenMalformed, ErrTokenAlgorithm, ErrUnknownKey, ErrTokenSignature, ErrTokenIssuer, ErrTokenAudience, ErrTokenExpired, ErrTokenNotYetValid, ErrTokenInactive}
	for _, tc := range []struct {
		name  string
		token string
		cause error
	}{
		{"not a JWS", "garbage", ErrTokenMalformed},
		{"JSON serialization", `{"payload":"` + parts[1] + `"}`, ErrTokenMalformed},
		{"typ JWT", sign(t, as.key, jwa.ES256, map[string]any{jws.TypeKey: "JWT"}, as.claims()), ErrTokenMalformed},
		{"exp a string", mod(func(c map[string]any) { c["exp"] = "4102444800" }), ErrTokenMalformed},
		{"sub missing", mod(func(c map[string]any) { delete(c, "sub") }), ErrTokenMalformed},
		{"HS256", sign(t, pubJSON, jwa.HS256, map[string]any{jws.KeyIDKey: "k1"}, as.claims()), ErrTokenAlgorithm},
		{"unknown kid", sign(t, as.key, jwa.ES256, map[string]any{jws.KeyIDKey: "k9"}, as.claims()), ErrUnknownKey},
		{"tampered payload", parts[0] + "." + b64(as.with(func(c map[string]any) { c["sub"] = "mallory" })) + "." + parts[2], ErrTokenSignature},
		{"wrong issuer", mod(func(c map[string]any) { c["iss"] = "https://evil.example" }), ErrTokenIssuer},
		// The middleware's own check, after any validator (RFC 8707 §2).
		{"wrong audience", mod(func(c map[string]any) { c["aud"] = "https://other.example" }), ErrTokenAudience},
		{"aud missing", mod(func(c map[string]any) { delete(c, "aud") }), ErrTokenAudience},
		{"aud malformed", mod(func(c map[string]any) { c["aud"] = []any{as.ts.URL, 1} }), ErrTokenMalformed},
		{"expired", mod(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }), ErrTokenExpired},
		{"nbf ahead", mod(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), ErrTokenNotYetValid},
		{"iat ahead", mod(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() }), ErrTokenNotYetValid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			req := httptest.NewRequest(http.MethodGet, "https://api.example/things", nil)
			req.Header.Set("Authorization", "DPoP "+tc.token)
			req.Header.Set("DPoP", "x.y.z")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if got == nil || rec.Code != http.StatusUnauthorized || got.Code != dpop.CodeInvalidToken {
				t.Fatalf("status %d, error %+v; want 401 invalid_token", rec.Code, got)
			}
			if !errors.Is(got, tc.cause) || !errors.Is(got, ErrInvalidToken) {
				t.Errorf("cause %v, want %v and ErrInvalidToken", got.Err, tc.cause)
			}
			for _, s := range sentinels {
				if s != tc.cause && errors.Is(got, s) {
					t.Errorf("cause %v is also %v", got.Err, s)
				}
			}
		})
	}
}
