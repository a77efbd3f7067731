package middleware

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/jose"
	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// RFC 8707 audiences at the resource server: the middleware accepts a token
// only when its audience names one of Options.Audiences, whichever
// validator read it, and hands the handler the token's audience and the
// host's claims.

// audienceMode makes tokens that one TokenValidator accepts, built here
// (a store record, a signed JWT, an introspection answer) rather than by
// an authorization server.
type audienceMode struct {
	name      string
	validator TokenValidator
	// token returns a token bound to jkt, for subject alice of client
	// app with scope "read", whose aud is aud (a string, a []string, or
	// nil for none) and whose host claims are claims (nil for none).
	token func(t *testing.T, jkt string, aud any, claims map[string]any) string
}

// audienceModes are the three validators of the package.
func audienceModes(t *testing.T) []audienceMode {
	t.Helper()
	const issuer = "https://as.example"
	// Store: the record's Audience and Claims.
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	storeToken := func(t *testing.T, jkt string, aud any, claims map[string]any) string {
		t.Helper()
		rec := &store.AccessToken{GrantID: "g", ClientID: "app", Subject: "alice", Scope: "read", JKT: jkt,
			Audience: audienceSlice(aud), IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
		if claims != nil {
			if rec.Claims, err = json.Marshal(claims); err != nil {
				t.Fatal(err)
			}
		}
		tok := randomToken()
		if err := m.SaveAccessToken(t.Context(), store.HashToken(tok), rec); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// JWT: hand-signed with a key given to the validator.
	key := newSigningKey(t, "k1")
	pub, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	keys := jwk.NewSet()
	keys.AddKey(pub)
	jv := newTestJWTValidator(t, JWTOptions{Issuer: issuer, Keys: keys})
	jwtToken := func(t *testing.T, jkt string, aud any, claims map[string]any) string {
		t.Helper()
		now := time.Now()
		c := map[string]any{
			"iss": issuer, "sub": "alice", "client_id": "app", "scope": "read", "jti": randomToken(),
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "cnf": map[string]any{"jkt": jkt},
		}
		if aud != nil {
			c["aud"] = aud
		}
		maps.Copy(c, claims)
		return sign(t, key, jwa.ES256, nil, c)
	}
	// Introspection: the answer of an endpoint that knows each token.
	is := newAnsweringIntrospection(t)
	iv, err := NewIntrospectionValidator(IntrospectionOptions{Endpoint: is.ts.URL + "/introspect", ClientID: "rs", ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	introspectionToken := func(t *testing.T, jkt string, aud any, claims map[string]any) string {
		t.Helper()
		now := time.Now()
		a := map[string]any{
			"active": true, "token_type": "DPoP", "iss": issuer, "sub": "alice", "client_id": "app", "scope": "read",
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "cnf": map[string]any{"jkt": jkt},
		}
		if aud != nil {
			a["aud"] = aud
		}
		maps.Copy(a, claims)
		tok := randomToken()
		is.answer(t, tok, a)
		return tok
	}
	return []audienceMode{
		{"store", StoreValidator{Store: m}, storeToken},
		{"jwt", jv, jwtToken},
		{"introspection", iv, introspectionToken},
	}
}

// audienceSlice is aud as a record holds it.
func audienceSlice(aud any) []string {
	switch a := aud.(type) {
	case string:
		return []string{a}
	case []string:
		return a
	}
	return nil
}

// answeringIntrospection is an introspection endpoint (RFC 7662 §2) that
// answers with the answer given for each token, and {"active":false} for
// others.
type answeringIntrospection struct {
	ts      *httptest.Server
	mu      sync.Mutex
	answers map[string][]byte
}

func newAnsweringIntrospection(t *testing.T) *answeringIntrospection {
	t.Helper()
	is := &answeringIntrospection{answers: map[string][]byte{}}
	is.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		a, ok := is.answers[r.PostFormValue("token")]
		is.mu.Unlock()
		if !ok {
			a = []byte(`{"active":false}`)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(a)
	}))
	t.Cleanup(is.ts.Close)
	return is
}

func (is *answeringIntrospection) answer(t *testing.T, token string, answer map[string]any) {
	t.Helper()
	b, err := json.Marshal(answer)
	if err != nil {
		t.Fatal(err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.answers[token] = b
}

// audienceServer is a middleware with validator v, the Audiences given, a
// replay cache that counts its inserts and an ErrorHandler that keeps the
// refusal; the handler keeps the principal.
type audienceServer struct {
	h       http.Handler
	replay  *replayDown // accepts every proof, counting
	refusal *Error
	seen    *Principal
}

func newAudienceServer(t *testing.T, v TokenValidator, audiences []string, edit func(*Options)) *audienceServer {
	t.Helper()
	s := &audienceServer{replay: &replayDown{inserted: true}}
	opts := Options{ResourceURL: resourceGaps, Audiences: audiences, Validator: v,
		DPoP:         dpop.VerifierOptions{ReplayCache: s.replay},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, e *Error) { s.refusal = e; WriteError(w, r, e) }}
	if edit != nil {
		edit(&opts)
	}
	mw, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.h = mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.seen, _ = PrincipalFrom(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}))
	return s
}

// serve sends one DPoP request with token and a fresh proof by signer.
func (s *audienceServer) serve(t *testing.T, signer *dpop.Signer, token string) *httptest.ResponseRecorder {
	t.Helper()
	s.refusal, s.seen = nil, nil
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, dpopRequestGaps(t, signer, resourceGaps+"/api", token))
	return rec
}

// A token is accepted only when its aud names one of Options.Audiences
// (default: ResourceURL), compared exactly, in every validation mode; a
// refusal is 401 invalid_token with ErrTokenAudience, and costs no entry
// in the replay cache.
func TestResourceAudience(t *testing.T) {
	const invoices = "urn:example:invoices"
	tests := []struct {
		name      string
		audiences []string // Options.Audiences
		aud       any      // the token's: a string, a []string, or nil for none
		accepted  bool
	}{
		{"default Audiences, aud the resource URL", nil, []string{resourceGaps}, true},
		{"default Audiences, aud the resource URL as a string", nil, resourceGaps, true},
		{"default Audiences, aud among others", nil, []string{"https://other.example", resourceGaps}, true},
		{"one of several Audiences among several aud", []string{resourceGaps, invoices}, []string{"https://other.example", invoices}, true},
		{"several Audiences, aud the first", []string{resourceGaps, invoices}, []string{resourceGaps}, true},
		{"token for another API", nil, []string{"https://other.example"}, false},
		{"token for another API as a string", nil, "https://other.example", false},
		{"no aud", nil, nil, false},
		{"empty aud", nil, []string{}, false},
		{"aud empty string", nil, []string{""}, false},
		{"aud with a trailing slash", nil, []string{resourceGaps + "/"}, false},
		{"aud in other case", nil, []string{strings.ToUpper(resourceGaps)}, false},
		{"Audiences replace the resource URL", []string{invoices}, []string{resourceGaps}, false},
		{"aud is a prefix of an audience", []string{resourceGaps + "/v1"}, []string{resourceGaps}, false},
	}
	for _, mode := range audienceModes(t) {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				signer := newSigner(t)
				s := newAudienceServer(t, mode.validator, tt.audiences, nil)
				rec := s.serve(t, signer, mode.token(t, signer.JKT(), tt.aud, nil))
				if tt.accepted {
					if rec.Code != http.StatusNoContent || s.refusal != nil || s.seen == nil {
						t.Fatalf("got %d %v; want accepted", rec.Code, s.refusal)
					}
					if !slices.Equal(s.seen.Audience, audienceSlice(tt.aud)) {
						t.Errorf("Principal.Audience %q, want %q", s.seen.Audience, tt.aud)
					}
					if n := s.replay.calls.Load(); n != 1 {
						t.Errorf("%d replay cache inserts, want 1", n)
					}
					return
				}
				e := s.refusal
				if rec.Code != http.StatusUnauthorized || e == nil || e.Code != dpop.CodeInvalidToken || s.seen != nil {
					t.Fatalf("got %d %+v; want 401 invalid_token", rec.Code, e)
				}
				if !errors.Is(e, ErrTokenAudience) || !errors.Is(e, ErrInvalidToken) {
					t.Errorf("cause %v, want ErrTokenAudience and ErrInvalidToken", e.Err)
				}
				for _, other := range []error{ErrTokenMalformed, ErrTokenIssuer, ErrTokenExpired, ErrValidatorUnavailable, dpop.ErrKeyMismatch} {
					if errors.Is(e, other) {
						t.Errorf("cause %v is also %v", e.Err, other)
					}
				}
				if www := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(www, "DPoP ") || !strings.Contains(www, `error="invalid_token"`) {
					t.Errorf("challenge %q", www)
				}
				// Refused before the proof check: no place taken in the
				// replay cache, none of the client's quota spent.
				if n := s.replay.calls.Load(); n != 0 {
					t.Errorf("%d replay cache inserts for a refused token, want 0", n)
				}
			})
		}
	}
}

// A Bearer token (AllowBearer) is held to the same audience rule.
func TestResourceAudienceBearer(t *testing.T) {
	mode := audienceModes(t)[0] // store: unbound records
	s := newAudienceServer(t, mode.validator, nil, func(o *Options) { o.AllowBearer = true })
	for _, tc := range []struct {
		aud  any
		want int
	}{{[]string{resourceGaps}, http.StatusNoContent}, {[]string{"https://other.example"}, http.StatusUnauthorized}, {nil, http.StatusUnauthorized}} {
		req := httptest.NewRequest(http.MethodGet, resourceGaps+"/api", nil)
		req.Header.Set("Authorization", "Bearer "+mode.token(t, "", tc.aud, nil))
		s.refusal, s.seen = nil, nil
		rec := httptest.NewRecorder()
		s.h.ServeHTTP(rec, req)
		if rec.Code != tc.want || (tc.want == http.StatusUnauthorized && !errors.Is(s.refusal, ErrTokenAudience)) {
			t.Errorf("aud %q: got %d %v, want %d", tc.aud, rec.Code, s.refusal, tc.want)
		}
	}
}

// The handler sees the host's claims (Principal.Claims) without the
// registered ones, and the token's audience, in every mode; what it does
// to them does not reach the next request with the same token (the JWT
// and introspection caches hand out copies).
func TestResourcePrincipalClaims(t *testing.T) {
	claims := map[string]any{"tenant": "acme", "roles": []any{"reader", "auditor"}, "level": float64(3), "org": map[string]any{"id": "o1"}}
	for _, mode := range audienceModes(t) {
		t.Run(mode.name, func(t *testing.T) {
			signer := newSigner(t)
			s := newAudienceServer(t, mode.validator, nil, nil)
			aud := []string{resourceGaps, "https://other.example"}
			tok := mode.token(t, signer.JKT(), aud, claims)
			for i := range 2 {
				if rec := s.serve(t, signer, tok); rec.Code != http.StatusNoContent || s.seen == nil {
					t.Fatalf("request %d: %d %v", i, rec.Code, s.refusal)
				}
				p := s.seen
				if !reflect.DeepEqual(p.Claims, claims) {
					t.Errorf("request %d: Principal.Claims %v, want %v", i, p.Claims, claims)
				}
				if !slices.Equal(p.Audience, aud) || p.Subject != "alice" || p.ClientID != "app" || !slices.Equal(p.Scopes, []string{"read"}) {
					t.Errorf("request %d: principal %+v", i, *p)
				}
				// A handler changing its principal.
				p.Claims["tenant"] = "mallory"
				delete(p.Claims, "level")
				p.Audience[0] = "https://evil.example"
				p.Scopes[0] = "admin"
				_ = append(p.Scopes, "write")
			}
			// No host claims: nil, not an empty map.
			if rec := s.serve(t, signer, mode.token(t, signer.JKT(), aud, nil)); rec.Code != http.StatusNoContent || s.seen.Claims != nil {
				t.Errorf("without host claims: %d, Claims %#v; want nil", rec.Code, s.seen.Claims)
			}
		})
	}
}

// The store's Claims bytes decoded: a JSON object, registered names left
// out (as the JWT and introspection modes leave them out); anything else
// refuses the token (fail closed) with ErrTokenMalformed.
func TestStoreValidatorClaims(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	v := StoreValidator{Store: m}
	tests := []struct {
		name   string
		claims []byte
		want   map[string]any // nil with ok: no claims
		ok     bool
	}{
		{"none", nil, nil, true},
		{"empty bytes", []byte{}, nil, true},
		{"empty object", []byte(`{}`), nil, true},
		{"host claims", []byte(`{"tenant":"acme","n":1,"tags":["a"]}`), map[string]any{"tenant": "acme", "n": float64(1), "tags": []any{"a"}}, true},
		{"registered names left out", []byte(`{"sub":"mallory","aud":"https://evil.example","tenant":"acme"}`), map[string]any{"tenant": "acme"}, true},
		{"registered names only", []byte(`{"scope":"admin"}`), nil, true},
		{"not JSON", []byte(`{"tenant":`), nil, false},
		{"an array", []byte(`["tenant"]`), nil, false},
		{"a string", []byte(`"tenant"`), nil, false},
		{"null", []byte(`null`), nil, false},
		{"trailing data", []byte(`{"a":1} {}`), nil, false},
		{"a member given twice (read as strictly as JWT claims)", []byte(`{"tenant":"acme","tenant":"evil"}`), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := randomToken()
			if err := m.SaveAccessToken(t.Context(), store.HashToken(tok), &store.AccessToken{ClientID: "app", Subject: "alice", Audience: []string{resourceGaps},
				Claims: tt.claims, IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			p, err := v.Validate(t.Context(), tok)
			if !tt.ok {
				if p != nil || !errors.Is(err, ErrInvalidToken) || !errors.Is(err, ErrTokenMalformed) || errors.Is(err, ErrValidatorUnavailable) {
					t.Fatalf("Validate = %v, %v; want ErrInvalidToken and ErrTokenMalformed", p, err)
				}
				if strings.Contains(err.Error(), "tenant") {
					t.Errorf("error %q holds the record's claims", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !reflect.DeepEqual(p.Claims, tt.want) || (p.Claims == nil) != (tt.want == nil) {
				t.Errorf("Claims %#v, want %#v", p.Claims, tt.want)
			}
			if p.Subject != "alice" || !slices.Equal(p.Audience, []string{resourceGaps}) {
				t.Errorf("principal %+v", *p)
			}
		})
	}
}

// Principal.Claims never holds a name jose.Registered lists, in the modes
// that read members: a JWT's claims and an introspection answer's members.
func TestPrincipalClaimsNeverRegistered(t *testing.T) {
	for _, mode := range audienceModes(t) {
		if mode.name == "store" {
			continue // TestStoreValidatorClaims
		}
		t.Run(mode.name, func(t *testing.T) {
			signer := newSigner(t)
			s := newAudienceServer(t, mode.validator, nil, nil)
			if rec := s.serve(t, signer, mode.token(t, signer.JKT(), resourceGaps, map[string]any{"nbf": time.Now().Add(-time.Minute).Unix(), "x": true})); rec.Code != http.StatusNoContent {
				t.Fatalf("%d %v", rec.Code, s.refusal)
			}
			for name := range s.seen.Claims {
				if jose.Registered(name) {
					t.Errorf("Claims hold the registered %q", name)
				}
			}
			if !reflect.DeepEqual(s.seen.Claims, map[string]any{"x": true}) {
				t.Errorf("Claims %v", s.seen.Claims)
			}
		})
	}
}

// An audience refusal is logged like every other: one record with the
// status, the error code and the cause.
func TestResourceAudienceRefusalLog(t *testing.T) {
	var buf bytes.Buffer
	modes := audienceModes(t)
	s := newAudienceServer(t, modes[0].validator, nil, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&buf, nil)) })
	signer := newSigner(t)
	s.serve(t, signer, modes[0].token(t, signer.JKT(), "https://other.example", nil))
	log := buf.String()
	for _, want := range []string{"request refused", "status=401", "error=invalid_token", "audience names another resource"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "other.example") {
		t.Errorf("log holds the token's aud:\n%s", log)
	}
}

// Options.Audiences: an empty entry is refused by New; the default is
// ResourceURL alone; the list is copied, so that the caller's slice can
// change after New without changing the middleware.
func TestOptionsAudiences(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	base := Options{ResourceURL: resourceGaps, Validator: StoreValidator{Store: m}}
	for _, tc := range []struct {
		name      string
		audiences []string
		want      []string // nil: refused
	}{
		{"default", nil, []string{resourceGaps}},
		{"empty list", []string{}, []string{resourceGaps}},
		{"given", []string{"urn:example:a", resourceGaps}, []string{"urn:example:a", resourceGaps}},
		{"an empty entry", []string{resourceGaps, ""}, nil},
		{"only an empty entry", []string{""}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			o.Audiences = tc.audiences
			got, err := o.normalize()
			_, newErr := New(o)
			if tc.want == nil {
				const msg = "middleware: Options.Audiences must not hold an empty entry"
				if err == nil || err.Error() != msg || newErr == nil || newErr.Error() != msg {
					t.Fatalf("normalize: %v, New: %v; want %q", err, newErr, msg)
				}
				return
			}
			if err != nil || newErr != nil || !slices.Equal(got.Audiences, tc.want) {
				t.Fatalf("Audiences %q (%v, %v), want %q", got.Audiences, err, newErr, tc.want)
			}
		})
	}
	// The caller's slice changing after New.
	aud := []string{"urn:example:a"}
	mode := audienceModes(t)[0]
	s := newAudienceServer(t, mode.validator, aud, nil)
	aud[0] = "urn:example:b"
	signer := newSigner(t)
	if rec := s.serve(t, signer, mode.token(t, signer.JKT(), "urn:example:a", nil)); rec.Code != http.StatusNoContent {
		t.Errorf("after the caller's change: %d %v", rec.Code, s.refusal)
	}
}

// The audience check allocates nothing, accepted or not.
func TestAudienceCheckAllocs(t *testing.T) {
	st := &settings{audiences: []string{"urn:example:a", resourceGaps}}
	aud := []string{"https://other.example", resourceGaps}
	if !st.forUs(aud) || st.forUs(nil) || st.forUs([]string{"urn:example:b"}) {
		t.Fatal("forUs")
	}
	if n := testing.AllocsPerRun(100, func() { st.forUs(aud) }); n != 0 {
		t.Errorf("%v allocations a check, want 0", n)
	}
}

// detach: each copy of a cached principal has its own Scopes, Audience and
// Claims; nil stays nil and costs nothing; the two slices share one
// allocation without an append to one reaching the other.
func TestPrincipalDetach(t *testing.T) {
	scopes := make([]string, 2, 8) // room to append in place
	scopes[0], scopes[1] = "read", "write"
	tests := []struct {
		name   string
		p      Principal
		allocs float64 // -1: not checked (maps.Clone)
	}{
		{"nothing to copy", Principal{Subject: "alice"}, 0},
		{"empty with capacity", Principal{Scopes: make([]string, 0, 4), Audience: make([]string, 0, 4)}, 0},
		{"scopes only", Principal{Scopes: scopes}, 1},
		{"audience only", Principal{Audience: []string{resourceGaps}}, 1},
		{"scopes and audience", Principal{Scopes: scopes, Audience: []string{resourceGaps, "urn:example:a"}}, 1},
		{"all", Principal{Scopes: scopes, Audience: []string{resourceGaps}, Claims: map[string]any{"tenant": "acme"}}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := tt.p
			want := Principal{Scopes: slices.Clone(orig.Scopes), Audience: slices.Clone(orig.Audience), Claims: maps.Clone(orig.Claims)}
			q := orig
			q.detach()
			if (q.Scopes == nil) != (orig.Scopes == nil) || (q.Audience == nil) != (orig.Audience == nil) || (q.Claims == nil) != (orig.Claims == nil) {
				t.Fatalf("nil-ness changed: %#v", q)
			}
			if !slices.Equal(q.Scopes, orig.Scopes) || !slices.Equal(q.Audience, orig.Audience) || !maps.Equal(q.Claims, orig.Claims) {
				t.Fatalf("detached %#v, want the values of %#v", q, orig)
			}
			for i := range q.Scopes {
				q.Scopes[i] = "x"
			}
			for i := range q.Audience {
				q.Audience[i] = "y"
			}
			audience := slices.Clone(q.Audience)
			q.Scopes = append(q.Scopes, "appended")
			q.Audience = append(q.Audience, "appended")
			if q.Claims != nil {
				q.Claims["tenant"] = "mallory"
			}
			if !slices.Equal(orig.Scopes, want.Scopes) || !slices.Equal(orig.Audience, want.Audience) || !maps.Equal(orig.Claims, want.Claims) {
				t.Errorf("the original changed: %#v", orig)
			}
			if cap(orig.Scopes) > len(orig.Scopes) && orig.Scopes[:len(orig.Scopes)+1][len(orig.Scopes)] == "appended" {
				t.Error("an append reached the original's array")
			}
			if !slices.Equal(q.Audience[:len(audience)], audience) {
				t.Errorf("an append to Scopes reached Audience: %q", q.Audience)
			}
			if tt.allocs >= 0 {
				if n := testing.AllocsPerRun(100, func() { c := orig; c.detach() }); n != tt.allocs {
					t.Errorf("%v allocations, want %v", n, tt.allocs)
				}
			}
		})
	}
}
