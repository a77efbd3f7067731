package middleware

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/store"
)

// The resource server's credentials; both need form-urlencoding before
// HTTP Basic (RFC 6749 §2.3.1).
const (
	introspectionTestClient = "resource server:1"
	introspectionTestSecret = "s3cr%t+/=: é"
	// introspectionTestResource is the resource server's identifier: its
	// registered resource (the right to introspect the tokens of that
	// audience, RFC 7662 §4) and the audience of the tokens saved.
	introspectionTestResource = "https://api.example"
)

// introspectionTestAS is an authorization server from package handlers
// with opaque tokens, counting introspection requests.
type introspectionTestAS struct {
	ts    *httptest.Server
	store *store.Memory
	clock *fakeClock
	hits  atomic.Int64
}

func newIntrospectionTestAS(t *testing.T) *introspectionTestAS {
	t.Helper()
	as := &introspectionTestAS{clock: newFakeClock()}
	var h http.Handler
	as.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == handlers.DefaultPaths.Introspect {
			as.hits.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(as.ts.Close)
	st, err := store.NewMemory(store.MemoryOptions{Now: as.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	as.store = st
	srv, err := handlers.New(handlers.Config{Issuer: as.ts.URL, Store: st, Now: as.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Mount(mux)
	h = mux
	if err := st.SaveClient(t.Context(), &store.Client{ID: introspectionTestClient, SecretHash: store.HashSecret(introspectionTestSecret),
		Introspect: true, Resources: []string{introspectionTestResource}}); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveClient(t.Context(), &store.Client{ID: "public-app"}); err != nil {
		t.Fatal(err)
	}
	return as
}

func randomTestToken(t *testing.T) string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// save stores an opaque access token expiring in ttl, bound to testJKT
// unless bearer.
func (as *introspectionTestAS) save(t *testing.T, ttl time.Duration, bearer bool) string {
	t.Helper()
	tok := randomTestToken(t)
	now := as.clock.Now()
	rec := &store.AccessToken{GrantID: "g", ClientID: "app", Subject: "alice", Scope: "read write", JKT: testJKT,
		Audience: []string{introspectionTestResource}, IssuedAt: now, ExpiresAt: now.Add(ttl)}
	if bearer {
		rec.JKT = ""
	}
	if err := as.store.SaveAccessToken(t.Context(), store.HashToken(tok), rec); err != nil {
		t.Fatal(err)
	}
	return tok
}

func (as *introspectionTestAS) validator(t *testing.T, f func(o *IntrospectionOptions)) *IntrospectionValidator {
	t.Helper()
	opts := IntrospectionOptions{
		Endpoint: as.ts.URL + handlers.DefaultPaths.Introspect,
		ClientID: introspectionTestClient, ClientSecret: introspectionTestSecret,
		Now: as.clock.Now,
	}
	if f != nil {
		f(&opts)
	}
	v, err := NewIntrospectionValidator(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestIntrospectionValidatorAgainstAS(t *testing.T) {
	as := newIntrospectionTestAS(t)
	v := as.validator(t, nil)
	now := as.clock.Now()
	refresh := randomTestToken(t)
	if err := as.store.SaveRefreshToken(t.Context(), store.HashToken(refresh), &store.RefreshToken{
		GrantID: "g", ClientID: "app", Subject: "alice", Scope: "read", Audience: []string{introspectionTestResource},
		IssuedAt: now, ExpiresAt: now.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	revoked := as.save(t, time.Hour, false)
	if err := as.store.RevokeAccessToken(t.Context(), store.HashToken(revoked)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		token  string
		want   *Principal // nil: ErrInvalidToken for reason
		reason string
	}{
		{"active DPoP token", as.save(t, time.Hour, false),
			&Principal{Subject: "alice", ClientID: "app", Scopes: []string{"read", "write"}, JKT: testJKT, ExpiresAt: now.Add(time.Hour)}, ""},
		{"active Bearer token", as.save(t, 2*time.Hour, true),
			&Principal{Subject: "alice", ClientID: "app", Scopes: []string{"read", "write"}, ExpiresAt: now.Add(2 * time.Hour)}, ""},
		{"unknown token", randomTestToken(t), nil, "inactive"},
		{"revoked token", revoked, nil, "inactive"},
		{"refresh token presented as an access token", refresh, nil, "not an access token type"},
		{"empty token", "", nil, "size out of bounds"},
		{"oversized token", strings.Repeat("a", 17<<10), nil, "size out of bounds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Validate(t.Context(), tt.token)
			if tt.want == nil {
				if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrValidatorUnavailable) || p != nil {
					t.Fatalf("Validate = %v, %v; want ErrInvalidToken", p, err)
				}
				if !strings.HasSuffix(err.Error(), "introspection: "+tt.reason) {
					t.Errorf("refused for %q, want %q", err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if p.Subject != tt.want.Subject || p.ClientID != tt.want.ClientID || p.JKT != tt.want.JKT ||
				!slices.Equal(p.Scopes, tt.want.Scopes) || !p.ExpiresAt.Equal(tt.want.ExpiresAt) {
				t.Errorf("principal = %+v, want %+v", *p, *tt.want)
			}
		})
	}
}

func TestIntrospectionValidatorUnavailable(t *testing.T) {
	as := newIntrospectionTestAS(t)
	tok := as.save(t, time.Hour, false)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tests := []struct {
		name string
		opts func(o *IntrospectionOptions)
	}{
		{"wrong secret (401)", func(o *IntrospectionOptions) { o.ClientSecret = "wrong" }},
		{"unknown client (401)", func(o *IntrospectionOptions) { o.ClientID = "nobody" }},
		{"public client (401)", func(o *IntrospectionOptions) { o.ClientID = "public-app" }},
		{"authorization server down", func(o *IntrospectionOptions) { o.Endpoint = closed.URL + "/introspect" }},
		{"wrong path (404)", func(o *IntrospectionOptions) { o.Endpoint = as.ts.URL + "/nope" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := as.validator(t, tt.opts)
			for range 2 { // nothing is cached from a failure
				p, err := v.Validate(t.Context(), tok)
				if !errors.Is(err, ErrValidatorUnavailable) || errors.Is(err, ErrInvalidToken) || p != nil {
					t.Fatalf("Validate = %v, %v; want only ErrValidatorUnavailable", p, err)
				}
			}
		})
	}
	t.Run("request context done", func(t *testing.T) {
		v := as.validator(t, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := v.Validate(ctx, tok); !errors.Is(err, ErrValidatorUnavailable) {
			t.Errorf("Validate = %v, want ErrValidatorUnavailable", err)
		}
	})
}

func TestIntrospectionValidatorCache(t *testing.T) {
	t.Run("second validation is served from the cache", func(t *testing.T) {
		as := newIntrospectionTestAS(t)
		v := as.validator(t, nil)
		tok := as.save(t, time.Hour, false)
		p1, err := v.Validate(t.Context(), tok)
		if err != nil {
			t.Fatal(err)
		}
		p1.Scopes[0] = "admin" // must not reach the cache
		p2, err := v.Validate(t.Context(), tok)
		if err != nil {
			t.Fatal(err)
		}
		if n := as.hits.Load(); n != 1 {
			t.Errorf("%d introspection requests, want 1", n)
		}
		if !slices.Equal(p2.Scopes, []string{"read", "write"}) || p2.JKT != testJKT {
			t.Errorf("cached principal = %+v", *p2)
		}
		p2.Scopes[0] = "admin"
		p3, err := v.Validate(t.Context(), tok)
		if err != nil || !slices.Equal(p3.Scopes, []string{"read", "write"}) {
			t.Errorf("cached principal after a caller changed its copy = %+v, %v", p3, err)
		}
		// Keyed by the token's hash, never the token.
		keys := v.active.Keys()
		if len(keys) != 1 || keys[0] != sha256.Sum256([]byte(tok)) {
			t.Errorf("cache keys = %x", keys)
		}
	})
	t.Run("not used past the token's exp", func(t *testing.T) {
		as := newIntrospectionTestAS(t)
		v := as.validator(t, func(o *IntrospectionOptions) { o.CacheTTL = time.Hour })
		tok := as.save(t, 30*time.Second, false)
		if _, err := v.Validate(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		as.clock.Advance(29 * time.Second)
		if _, err := v.Validate(t.Context(), tok); err != nil || as.hits.Load() != 1 {
			t.Fatalf("before exp: %v, %d requests; want a cache hit", err, as.hits.Load())
		}
		as.clock.Advance(time.Second) // now == exp
		if _, err := v.Validate(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("at exp: %v, want ErrInvalidToken", err)
		}
		if n := as.hits.Load(); n != 2 {
			t.Errorf("%d requests, want 2 (the cache entry ends at exp)", n)
		}
	})
	t.Run("not used past CacheTTL", func(t *testing.T) {
		as := newIntrospectionTestAS(t)
		v := as.validator(t, func(o *IntrospectionOptions) { o.CacheTTL = 10 * time.Second })
		tok := as.save(t, time.Hour, false)
		for range 2 {
			if _, err := v.Validate(t.Context(), tok); err != nil {
				t.Fatal(err)
			}
		}
		as.clock.Advance(10 * time.Second)
		if _, err := v.Validate(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		if n := as.hits.Load(); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})
	t.Run("revocation shows once the entry ends", func(t *testing.T) {
		as := newIntrospectionTestAS(t)
		v := as.validator(t, nil)
		tok := as.save(t, time.Hour, false)
		if _, err := v.Validate(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		if err := as.store.RevokeAccessToken(t.Context(), store.HashToken(tok)); err != nil {
			t.Fatal(err)
		}
		as.clock.Advance(time.Minute)
		if _, err := v.Validate(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("revoked token after CacheTTL: %v, want ErrInvalidToken", err)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		as := newIntrospectionTestAS(t)
		v := as.validator(t, func(o *IntrospectionOptions) { o.CacheSize = 2 })
		toks := []string{as.save(t, time.Hour, false), as.save(t, time.Hour, false), as.save(t, time.Hour, false)}
		for _, tok := range toks {
			if _, err := v.Validate(t.Context(), tok); err != nil {
				t.Fatal(err)
			}
		}
		for _, tok := range []string{toks[2], toks[1]} {
			if _, err := v.Validate(t.Context(), tok); err != nil {
				t.Fatal(err)
			}
		}
		if n := as.hits.Load(); n != 3 {
			t.Errorf("%d requests for the two newest tokens again, want 3 in all", n)
		}
		if _, err := v.Validate(t.Context(), toks[0]); err != nil {
			t.Fatal(err)
		}
		if n := as.hits.Load(); n != 4 {
			t.Errorf("%d requests, want 4: the first token was evicted", n)
		}
		if n := v.active.Len(); n != 2 {
			t.Errorf("cache holds %d entries, want 2", n)
		}
	})
	t.Run("inactive results kept 5 seconds", func(t *testing.T) {
		as := newIntrospectionTestAS(t)
		v := as.validator(t, nil)
		tok := randomTestToken(t)
		for range 3 {
			if _, err := v.Validate(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Validate = %v, want ErrInvalidToken", err)
			}
		}
		if n := as.hits.Load(); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
		as.clock.Advance(5 * time.Second)
		if _, err := v.Validate(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("Validate = %v, want ErrInvalidToken", err)
		}
		if n := as.hits.Load(); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})
	t.Run("inactive results do not evict active ones", func(t *testing.T) {
		as := newIntrospectionTestAS(t)
		v := as.validator(t, func(o *IntrospectionOptions) { o.CacheSize = 2 })
		tok := as.save(t, time.Hour, false)
		if _, err := v.Validate(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			v.Validate(t.Context(), randomTestToken(t))
		}
		before := as.hits.Load()
		if _, err := v.Validate(t.Context(), tok); err != nil || as.hits.Load() != before {
			t.Errorf("good token after bogus ones: %v, %d new requests; want a cache hit", err, as.hits.Load()-before)
		}
	})
}

func TestIntrospectionValidatorConcurrent(t *testing.T) {
	as := newIntrospectionTestAS(t)
	v := as.validator(t, func(o *IntrospectionOptions) { o.CacheSize = 4 })
	var toks []string
	for range 8 {
		toks = append(toks, as.save(t, time.Hour, false))
	}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			if i%8 == 7 {
				if _, err := v.Validate(t.Context(), "bogus"+fmt.Sprint(i)); !errors.Is(err, ErrInvalidToken) {
					t.Errorf("bogus token: %v", err)
				}
				return
			}
			p, err := v.Validate(t.Context(), toks[i%8])
			if err != nil {
				t.Errorf("Validate: %v", err)
				return
			}
			p.Scopes = append(p.Scopes[:0], "x")
		})
	}
	wg.Wait()
}

// fakeIntrospection serves a fixed answer after checking the request's
// form (RFC 7662 §2.1).
func fakeIntrospection(t *testing.T, status int, contentType, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		id, err1 := url.QueryUnescape(user)
		secret, err2 := url.QueryUnescape(pass)
		b, _ := io.ReadAll(r.Body)
		form, err3 := url.ParseQuery(string(b))
		switch {
		case r.Method != http.MethodPost, r.Header.Get("Content-Type") != "application/x-www-form-urlencoded",
			r.Header.Get("Accept") != "application/json", r.URL.RawQuery != "":
			t.Errorf("request %s %s, headers %v", r.Method, r.URL, r.Header)
		case !ok || err1 != nil || err2 != nil || id != introspectionTestClient || secret != introspectionTestSecret:
			t.Errorf("Basic credentials %q %q", user, pass)
		case err3 != nil || len(form) != 2 || form.Get("token") == "" || form.Get("token_type_hint") != "access_token":
			t.Errorf("form %q", b)
		}
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		if status == http.StatusFound {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestIntrospectionValidatorAnswers(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	past := time.Now().Add(-time.Second).Unix()
	dpop := func(extra string) string {
		return fmt.Sprintf(`{"active":true,"exp":%d,"token_type":"DPoP","cnf":{"jkt":%q},"sub":"alice","client_id":"app","scope":"read"%s}`, exp, testJKT, extra)
	}
	const ctJSON = "application/json"
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        error // nil: accepted
		reason      string
	}{
		{"DPoP token", 200, ctJSON, dpop(""), nil, ""},
		{"Bearer token, charset, other members", 200, "application/json; charset=utf-8", fmt.Sprintf(`{"active":true,"exp":%d,"token_type":"bearer","iss":"x","ext":{"a":[1]}}`, exp), nil, ""},
		{"active false", 200, ctJSON, `{"active":false}`, ErrInvalidToken, "inactive"},
		{`active "true"`, 200, ctJSON, fmt.Sprintf(`{"active":"true","exp":%d,"token_type":"Bearer"}`, exp), ErrInvalidToken, "active is not a boolean"},
		{"active 1", 200, ctJSON, fmt.Sprintf(`{"active":1,"exp":%d,"token_type":"Bearer"}`, exp), ErrInvalidToken, "active is not a boolean"},
		{"active null", 200, ctJSON, fmt.Sprintf(`{"active":null,"exp":%d,"token_type":"Bearer"}`, exp), ErrInvalidToken, "active is not a boolean"},
		{"active missing", 200, ctJSON, fmt.Sprintf(`{"exp":%d,"token_type":"Bearer"}`, exp), ErrInvalidToken, "active missing"},
		{"Active in capitals", 200, ctJSON, fmt.Sprintf(`{"Active":true,"exp":%d,"token_type":"Bearer"}`, exp), ErrInvalidToken, "active missing"},
		{"exp missing", 200, ctJSON, `{"active":true,"token_type":"Bearer"}`, ErrInvalidToken, "exp missing"},
		{"exp past", 200, ctJSON, fmt.Sprintf(`{"active":true,"exp":%d,"token_type":"Bearer"}`, past), ErrInvalidToken, "expired"},
		{"exp as a string", 200, ctJSON, fmt.Sprintf(`{"active":true,"exp":"%d","token_type":"Bearer"}`, exp), ErrInvalidToken, "exp is malformed"},
		{"token_type missing (a refresh token)", 200, ctJSON, fmt.Sprintf(`{"active":true,"exp":%d}`, exp), ErrInvalidToken, "not an access token type"},
		{"token_type N_A", 200, ctJSON, fmt.Sprintf(`{"active":true,"exp":%d,"token_type":"N_A"}`, exp), ErrInvalidToken, "not an access token type"},
		{"DPoP without cnf", 200, ctJSON, fmt.Sprintf(`{"active":true,"exp":%d,"token_type":"DPoP"}`, exp), ErrInvalidToken, "DPoP token without cnf.jkt"},
		{"Bearer with cnf.jkt", 200, ctJSON, fmt.Sprintf(`{"active":true,"exp":%d,"token_type":"Bearer","cnf":{"jkt":%q}}`, exp, testJKT), ErrInvalidToken, "Bearer token with cnf.jkt"},
		{"cnf.jkt a number", 200, ctJSON, fmt.Sprintf(`{"active":true,"exp":%d,"token_type":"DPoP","cnf":{"jkt":1}}`, exp), ErrInvalidToken, "cnf is malformed"},
		{"cnf by certificate", 200, ctJSON, fmt.Sprintf(`{"active":true,"exp":%d,"token_type":"Bearer","cnf":{"x5t#S256":"abc"}}`, exp), ErrInvalidToken, "cnf is malformed"},
		{"sub a number", 200, ctJSON, strings.Replace(dpop(""), `"sub":"alice"`, `"sub":1`, 1), ErrInvalidToken, "sub is malformed"},
		{"scope an array", 200, ctJSON, strings.Replace(dpop(""), `"scope":"read"`, `"scope":["read"]`, 1), ErrInvalidToken, "scope is malformed"},
		// aud is a string or an array of strings (RFC 7662 §2.2, RFC 7519
		// §4.1.3); whether it names this API is the middleware's check.
		{"aud a string, host claims", 200, ctJSON, dpop(`,"aud":"https://api.example","tenant":"acme"`), nil, ""},
		{"aud an array", 200, ctJSON, dpop(`,"aud":["https://other.example","https://api.example"]`), nil, ""},
		{"aud a number", 200, ctJSON, dpop(`,"aud":1`), ErrInvalidToken, "aud is malformed"},
		{"aud null", 200, ctJSON, dpop(`,"aud":null`), ErrInvalidToken, "aud is malformed"},
		{"aud an array with a number", 200, ctJSON, dpop(`,"aud":["https://api.example",1]`), ErrInvalidToken, "aud is malformed"},
		{"aud an object", 200, ctJSON, dpop(`,"aud":{"https://api.example":true}`), ErrInvalidToken, "aud is malformed"},
		{"aud twice", 200, ctJSON, dpop(`,"aud":"https://other.example","aud":"https://api.example"`), ErrInvalidToken, "aud is given twice"},
		// Members are unique (the JOSE profile's strict JSON): a second sub
		// is not read in place of the first.
		{"sub twice", 200, ctJSON, dpop(`,"sub":"mallory"`), ErrInvalidToken, "sub is given twice"},
		{"active twice", 200, ctJSON, fmt.Sprintf(`{"active":false,"active":true,"exp":%d,"token_type":"Bearer"}`, exp), ErrInvalidToken, "active is given twice"},
		{"2 MB body", 200, ctJSON, `{"active":true,"pad":"` + strings.Repeat("x", 2<<20) + `"}`, ErrValidatorUnavailable, "answer too large"},
		{"not JSON", 200, ctJSON, `{"active":true`, ErrValidatorUnavailable, "answer is not a JSON object"},
		{"JSON array", 200, ctJSON, `[{"active":true}]`, ErrValidatorUnavailable, "answer is not a JSON object"},
		{"JSON null", 200, ctJSON, `null`, ErrValidatorUnavailable, "answer is not a JSON object"},
		{"empty body", 200, ctJSON, ``, ErrValidatorUnavailable, "answer is not a JSON object"},
		{"HTML", 200, "text/html", dpop(""), ErrValidatorUnavailable, "answer is not application/json"},
		{"no content type", 200, "", dpop(""), ErrValidatorUnavailable, "answer is not application/json"},
		{"500", 500, ctJSON, dpop(""), ErrValidatorUnavailable, "endpoint answered 500"},
		{"401", 401, ctJSON, `{"error":"invalid_client"}`, ErrValidatorUnavailable, "endpoint answered 401"},
		{"redirect", http.StatusFound, ctJSON, dpop(""), ErrValidatorUnavailable, "endpoint answered 302"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeIntrospection(t, tt.status, tt.contentType, tt.body)
			v, err := NewIntrospectionValidator(IntrospectionOptions{Endpoint: srv.URL + "/introspect", ClientID: introspectionTestClient, ClientSecret: introspectionTestSecret})
			if err != nil {
				t.Fatal(err)
			}
			p, err := v.Validate(t.Context(), "tok-"+randomTestToken(t))
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want == nil && (p == nil || p.ExpiresAt.Unix() != exp):
				t.Errorf("principal = %+v", p)
			case tt.want != nil && (!errors.Is(err, tt.want) || p != nil):
				t.Errorf("Validate = %v, %v; want %v", p, err, tt.want)
			case tt.want != nil && !strings.HasSuffix(err.Error(), "introspection: "+tt.reason):
				t.Errorf("refused for %q, want %q", err, tt.reason)
			case errors.Is(tt.want, ErrInvalidToken) && !errors.Is(err, introspectionCause(tt.reason)):
				t.Errorf("cause of %v is not %v", err, introspectionCause(tt.reason))
			case errors.Is(tt.want, ErrInvalidToken) && errors.Is(err, ErrValidatorUnavailable),
				errors.Is(tt.want, ErrValidatorUnavailable) && errors.Is(err, ErrInvalidToken):
				t.Errorf("error %v is both invalid and unavailable", err)
			}
		})
	}
}

// introspectionCause is the sentinel an introspection refusal for reason
// wraps besides ErrInvalidToken.
func introspectionCause(reason string) error {
	switch reason {
	case "inactive":
		return ErrTokenInactive
	case "expired":
		return ErrTokenExpired
	}
	return ErrTokenMalformed
}

func TestNewIntrospectionValidatorOptions(t *testing.T) {
	ok := IntrospectionOptions{Endpoint: "https://as.example/introspect", ClientID: "rs", ClientSecret: "s"}
	tests := []struct {
		name string
		f    func(o *IntrospectionOptions)
		ok   bool
	}{
		{"https", func(o *IntrospectionOptions) {}, true},
		{"http on loopback", func(o *IntrospectionOptions) { o.Endpoint = "http://127.0.0.1:8080/introspect" }, true},
		{"http on localhost", func(o *IntrospectionOptions) { o.Endpoint = "http://localhost/introspect" }, true},
		{"http on IPv6 loopback", func(o *IntrospectionOptions) { o.Endpoint = "http://[::1]:9/introspect" }, true},
		{"http elsewhere", func(o *IntrospectionOptions) { o.Endpoint = "http://as.example/introspect" }, false},
		{"http on a host named like loopback", func(o *IntrospectionOptions) { o.Endpoint = "http://127.0.0.1.evil.example/introspect" }, false},
		{"no endpoint", func(o *IntrospectionOptions) { o.Endpoint = "" }, false},
		{"relative endpoint", func(o *IntrospectionOptions) { o.Endpoint = "/introspect" }, false},
		{"ftp", func(o *IntrospectionOptions) { o.Endpoint = "ftp://as.example/introspect" }, false},
		{"fragment", func(o *IntrospectionOptions) { o.Endpoint = "https://as.example/introspect#x" }, false},
		{"no client id", func(o *IntrospectionOptions) { o.ClientID = "" }, false},
		{"no secret", func(o *IntrospectionOptions) { o.ClientSecret = "" }, false},
		{"negative cache size", func(o *IntrospectionOptions) { o.CacheSize = -1 }, false},
		{"negative TTL", func(o *IntrospectionOptions) { o.CacheTTL = -time.Second }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.f(&o)
			v, err := NewIntrospectionValidator(o)
			if (err == nil) != tt.ok || (err == nil) != (v != nil) {
				t.Errorf("NewIntrospectionValidator = %v, %v; want ok %v", v, err, tt.ok)
			}
		})
	}
}
