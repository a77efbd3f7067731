package middleware

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop/handlers"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

func TestJWTValidatorJWKSDownAtStart(t *testing.T) {
	// Decision under test: NewJWTValidator succeeds when the JWKS cannot be
	// fetched; Validate reports ErrValidatorUnavailable (503), never
	// ErrInvalidToken, until a fetch succeeds.
	t.Run("closed server", func(t *testing.T) {
		as := newJWTTestAS(t)
		closed := httptest.NewServer(http.NotFoundHandler())
		closed.Close()
		v, err := NewJWTValidator(t.Context(), JWTOptions{Issuer: as.ts.URL, JWKSURL: closed.URL + "/jwks", Now: as.clock.Now})
		if err != nil {
			t.Fatalf("NewJWTValidator: %v", err)
		}
		for range 2 {
			p, err := v.Validate(t.Context(), as.issue(t))
			if !errors.Is(err, ErrValidatorUnavailable) || errors.Is(err, ErrInvalidToken) || p != nil {
				t.Fatalf("Validate = %v, %v; want only ErrValidatorUnavailable", p, err)
			}
			as.clock.Advance(time.Minute)
		}
	})
	t.Run("server recovers", func(t *testing.T) {
		as := newJWTTestAS(t)
		as.down.Store(true)
		v := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, JWKSURL: as.ts.URL + handlers.DefaultPaths.JWKS, Now: as.clock.Now})
		tok := as.issue(t)
		if _, err := v.Validate(t.Context(), tok); !errors.Is(err, ErrValidatorUnavailable) {
			t.Fatalf("Validate while down = %v, want ErrValidatorUnavailable", err)
		}
		as.down.Store(false)
		// Within the refetch interval the failed fetch stands: no new fetch.
		hits := as.jwksHits.Load()
		if _, err := v.Validate(t.Context(), tok); !errors.Is(err, ErrValidatorUnavailable) {
			t.Fatalf("Validate right after recovery = %v, want ErrValidatorUnavailable", err)
		}
		if n := as.jwksHits.Load(); n != hits {
			t.Errorf("%d fetches within the refetch interval, want 0", n-hits)
		}
		as.clock.Advance(31 * time.Second)
		if _, err := v.Validate(t.Context(), tok); err != nil {
			t.Fatalf("Validate after the refetch interval = %v", err)
		}
	})
	t.Run("tokens do not each fetch while it is down", func(t *testing.T) {
		as := newJWTTestAS(t)
		as.down.Store(true)
		v := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, JWKSURL: as.ts.URL + handlers.DefaultPaths.JWKS, Now: as.clock.Now})
		tok := as.issue(t)
		hits := as.jwksHits.Load()
		for range 20 {
			if _, err := v.Validate(t.Context(), tok); !errors.Is(err, ErrValidatorUnavailable) {
				t.Fatalf("Validate while down = %v, want ErrValidatorUnavailable", err)
			}
		}
		// The first token fetches at once; the others wait for the backoff.
		if n := as.jwksHits.Load() - hits; n > 1 {
			t.Errorf("%d JWKS fetches for 20 tokens within the backoff, want at most 1", n)
		}
	})
	t.Run("middleware answers 503", func(t *testing.T) {
		as := newJWTTestAS(t)
		as.down.Store(true)
		v := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, JWKSURL: as.ts.URL + handlers.DefaultPaths.JWKS, Now: as.clock.Now})
		mw, err := New(Options{ResourceURL: "https://api.example", Validator: v})
		if err != nil {
			t.Fatal(err)
		}
		h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("request let through") }))
		req := httptest.NewRequest(http.MethodGet, "https://api.example/things", nil)
		req.Header.Set("Authorization", "DPoP "+as.issue(t))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", rec.Code)
		}
	})
}

func TestJWTValidatorBadJWKS(t *testing.T) {
	as := newJWTTestAS(t)
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"not JSON", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }},
		{"too large", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"keys":[],"pad":"`))
			w.Write([]byte(strings.Repeat("x", 1<<20)))
			w.Write([]byte(`"}`))
		}},
		{"404", http.NotFound},
		{"redirect to http elsewhere", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://as.example/jwks", http.StatusFound)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			v := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, JWKSURL: srv.URL + "/jwks", Now: as.clock.Now})
			if _, err := v.Validate(t.Context(), as.issue(t)); !errors.Is(err, ErrValidatorUnavailable) {
				t.Errorf("Validate = %v, want ErrValidatorUnavailable", err)
			}
		})
	}
}

func TestJWTValidatorKeyRotation(t *testing.T) {
	as := newJWTTestAS(t)
	v := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, JWKSURL: as.ts.URL + handlers.DefaultPaths.JWKS, Now: as.clock.Now})
	old := as.issue(t)
	if _, err := v.Validate(t.Context(), old); err != nil {
		t.Fatalf("token of the first key: %v", err)
	}
	if n := as.jwksHits.Load(); n != 1 {
		t.Errorf("%d JWKS fetches at start, want 1", n)
	}

	// The authorization server rotates: k2 signs, k1 is still published.
	as.install(t, newSigningKey(t, "k2"))
	fresh := as.issue(t)

	// Right after the start-up fetch, the refetch rule holds the new kid
	// back, however many tokens carry it (or made-up kids).
	for i := range 5 {
		if _, err := v.Validate(t.Context(), fresh); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("new kid within the refetch interval = %v, want ErrInvalidToken", err)
		}
		tok := sign(t, as.key, jwa.ES256, map[string]any{jws.KeyIDKey: "made-up-" + string(rune('a'+i))}, as.claims())
		if _, err := v.Validate(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("made-up kid = %v, want ErrInvalidToken", err)
		}
	}
	if n := as.jwksHits.Load(); n != 1 {
		t.Errorf("%d JWKS fetches within the refetch interval, want 1", n)
	}

	as.clock.Advance(31 * time.Second)
	for _, tok := range []string{fresh, old, fresh} {
		if _, err := v.Validate(t.Context(), tok); err != nil {
			t.Fatalf("after the refetch interval: %v", err)
		}
	}
	if n := as.jwksHits.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2", n)
	}

	// Concurrent tokens with a new kid wait for one fetch and all pass.
	as.install(t, newSigningKey(t, "k3"))
	as.clock.Advance(31 * time.Second)
	third := as.issue(t)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := v.Validate(t.Context(), third); err != nil {
				t.Errorf("concurrent new kid: %v", err)
			}
		})
	}
	wg.Wait()
	if n := as.jwksHits.Load(); n != 3 {
		t.Errorf("%d JWKS fetches, want 3", n)
	}
}

func TestJWTValidatorCacheLifetime(t *testing.T) {
	as := newJWTTestAS(t)
	ctx, cancel := context.WithCancel(t.Context())
	v, err := NewJWTValidator(ctx, JWTOptions{Issuer: as.ts.URL, JWKSURL: as.ts.URL + handlers.DefaultPaths.JWKS, Now: as.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	// The set fetched stays usable; fetching again is no longer possible.
	if _, err := v.Validate(t.Context(), as.issue(t)); err != nil {
		t.Errorf("known kid after the context ended: %v", err)
	}
	as.install(t, newSigningKey(t, "k2"))
	as.clock.Advance(time.Minute)
	if _, err := v.Validate(t.Context(), as.issue(t)); !errors.Is(err, ErrValidatorUnavailable) {
		t.Errorf("new kid after the context ended = %v, want ErrValidatorUnavailable", err)
	}
}

// An authorization server in the same process is often not listening yet
// when the validator is made: the first tokens fetch the JWKS again within a
// fraction of a second, not after the 30 s refetch interval.
func TestJWTValidatorJWKSNotYetListening(t *testing.T) {
	as := newJWTTestAS(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connections are refused
	v := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, JWKSURL: "http://" + addr + handlers.DefaultPaths.JWKS})
	tok := as.issue(t)
	if _, err := v.Validate(t.Context(), tok); !errors.Is(err, ErrValidatorUnavailable) {
		t.Fatalf("before the server listens: %v, want ErrValidatorUnavailable", err)
	}
	// The authorization server starts listening.
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: as.ts.Config.Handler}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	start := time.Now()
	for {
		_, err := v.Validate(t.Context(), tok)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrValidatorUnavailable) {
			t.Fatalf("Validate: %v", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("still unavailable after 5 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the key set was fetched after %v, want well under the 30 s refetch interval", d)
	}
}

// A key set whose key could verify no token of the profile is refused when
// the validator is made, not at the first token.
func TestNewJWTValidatorRefusesUnusableKeys(t *testing.T) {
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, tc := range map[string]struct {
		raw  any
		alg  string
		want string
	}{
		"RSA-1024":             {rsa1024, "", "1024 bits"},
		"RSA-1024 with RS256":  {rsa1024, "RS256", "1024 bits"},
		"P-256 with ES384":     {p256, "ES384", "curve"},
		"P-256 with alg HS256": {p256, "HS256", `alg "HS256" is not allowed`},
	} {
		t.Run(name, func(t *testing.T) {
			k, err := jwk.FromRaw(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			k.Set(jwk.KeyIDKey, "k")
			if tc.alg != "" {
				k.Set(jwk.AlgorithmKey, tc.alg)
			}
			set := jwk.NewSet()
			set.AddKey(k)
			_, err = NewJWTValidator(t.Context(), JWTOptions{Issuer: "i", Keys: set})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewJWTValidator: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestJWTValidatorAmbiguousKid(t *testing.T) {
	as := newJWTTestAS(t)
	keys := as.publicKeys(t)
	twin, _ := newSigningKey(t, "k1").PublicKey()
	keys.AddKey(twin)
	v := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, Keys: keys, Now: as.clock.Now})
	if _, err := v.Validate(t.Context(), as.issue(t)); !errors.Is(err, ErrInvalidToken) || !strings.HasSuffix(err.Error(), "ambiguous kid") {
		t.Errorf("two keys with the token's kid: %v, want ErrInvalidToken (ambiguous kid)", err)
	}
}
