package middleware

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop/handlers"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// gapJWKSServer serves a JWKS document with a settable status and body,
// counts fetches, and can hold a fetch until released.
type gapJWKSServer struct {
	ts      *httptest.Server
	hits    atomic.Int64
	status  atomic.Int64
	body    atomic.Pointer[[]byte]
	hold    atomic.Bool
	entered chan struct{} // a held fetch arrived
	release chan struct{} // closed: held fetches go on
}

func newGapJWKSServer(t *testing.T, body []byte) *gapJWKSServer {
	t.Helper()
	s := &gapJWKSServer{entered: make(chan struct{}, 16), release: make(chan struct{})}
	s.status.Store(http.StatusOK)
	s.body.Store(&body)
	s.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if s.hold.Load() {
			s.entered <- struct{}{}
			<-s.release
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(s.status.Load()))
		w.Write(*s.body.Load())
	}))
	t.Cleanup(s.ts.Close)
	return s
}

func jwksJSON(t *testing.T, set jwk.Set) []byte {
	t.Helper()
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A token whose kid is in the cached set is checked against that set: once
// the refetch interval has passed, known kids still fetch nothing.
func TestJWKSGapsKnownKidDoesNotRefetch(t *testing.T) {
	as := newJWTTestAS(t)
	v := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, JWKSURL: as.ts.URL + handlers.DefaultPaths.JWKS, Now: as.clock.Now, DisableCache: true})
	if n := as.jwksHits.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches at start, want 1", n)
	}
	for range 3 {
		as.clock.Advance(31 * time.Second)
		for range 3 {
			if _, err := v.Validate(t.Context(), as.issue(t)); err != nil {
				t.Fatalf("known kid: %v", err)
			}
		}
	}
	if n := as.jwksHits.Load(); n != 1 {
		t.Errorf("%d JWKS fetches for tokens of a known kid, want 1 (the start-up fetch)", n)
	}
}

// Within the refetch interval after a failed fetch, an unknown kid is
// refused as unavailable (the last fetch's error), not as an invalid token,
// and fetches nothing; a known kid still passes with the cached set.
func TestJWKSGapsFailedRefetchStands(t *testing.T) {
	as := newJWTTestAS(t)
	v := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, JWKSURL: as.ts.URL + handlers.DefaultPaths.JWKS, Now: as.clock.Now, DisableCache: true})
	old := as.issue(t)
	as.install(t, newSigningKey(t, "k2"))
	fresh := as.issue(t)
	as.down.Store(true)
	as.clock.Advance(31 * time.Second)
	for i := range 3 {
		_, err := v.Validate(t.Context(), fresh)
		if !errors.Is(err, ErrValidatorUnavailable) || errors.Is(err, ErrInvalidToken) {
			t.Fatalf("unknown kid #%d after a failed fetch = %v, want only ErrValidatorUnavailable", i, err)
		}
	}
	if n := as.jwksHits.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2 (start-up, one refetch)", n)
	}
	if _, err := v.Validate(t.Context(), old); err != nil {
		t.Errorf("known kid while the JWKS is down: %v", err)
	}
}

// A caller that gives up while another's fetch is in progress gets its own
// context's error, as unavailable; the fetch in progress completes. (Before
// a first set has been fetched, tokens go straight to the refetch slot.)
func TestJWKSGapsCallerGivesUpWaitingForFetch(t *testing.T) {
	as := newJWTTestAS(t)
	srv := newGapJWKSServer(t, jwksJSON(t, as.publicKeys(t)))
	srv.status.Store(http.StatusServiceUnavailable)
	v := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, JWKSURL: srv.ts.URL + "/jwks", Now: as.clock.Now, DisableCache: true})
	tok := as.issue(t)

	srv.status.Store(http.StatusOK)
	srv.hold.Store(true)
	first := make(chan error, 1)
	go func() {
		_, err := v.Validate(context.Background(), tok)
		first <- err
	}()
	select {
	case <-srv.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first token's fetch did not reach the JWKS endpoint")
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := v.Validate(ctx, tok)
	if !errors.Is(err, ErrValidatorUnavailable) || !errors.Is(err, context.Canceled) || errors.Is(err, ErrInvalidToken) {
		t.Errorf("caller gone while a fetch is in progress = %v, want ErrValidatorUnavailable wrapping context.Canceled", err)
	}

	srv.hold.Store(false)
	close(srv.release)
	select {
	case err := <-first:
		if err != nil {
			t.Errorf("token whose fetch was in progress: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the fetch in progress never completed")
	}
	if n := srv.hits.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2 (start-up, first token)", n)
	}
	if _, err := v.Validate(t.Context(), tok); err != nil {
		t.Errorf("after the fetch: %v", err)
	}
}

// The fetcher hands only a complete 200 answer of at most 512 KiB to the
// JWKS parser: a valid key set under another status, cut short, or one byte
// too large is no key set.
func TestJWKSGapsFetcherRefuses(t *testing.T) {
	as := newJWTTestAS(t)
	good := jwksJSON(t, as.publicKeys(t))
	padded := func(n int) []byte {
		// A valid JWKS of exactly n bytes: trailing white space is JSON.
		return append(append([]byte(nil), good...), []byte(strings.Repeat(" ", n-len(good)))...)
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		ok      bool
	}{
		{"200", func(w http.ResponseWriter, r *http.Request) { w.Write(good) }, true},
		{"exactly 512 KiB", func(w http.ResponseWriter, r *http.Request) { w.Write(padded(jwksMaxBytes)) }, true},
		{"512 KiB and one byte", func(w http.ResponseWriter, r *http.Request) { w.Write(padded(jwksMaxBytes + 1)) }, false},
		{"500 with a valid key set", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			w.Write(good)
		}, false},
		{"201 with a valid key set", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			w.Write(good)
		}, false},
		{"cut short after a valid key set", func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			defer conn.Close()
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len(good)+100)
			buf.Write(good)
			buf.Flush()
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			v := newTestJWTValidator(t, JWTOptions{Issuer: as.ts.URL, JWKSURL: srv.URL + "/jwks", Now: as.clock.Now})
			_, err := v.Validate(t.Context(), as.issue(t))
			switch {
			case tt.ok && err != nil:
				t.Errorf("Validate = %v, want the key set accepted", err)
			case !tt.ok && (!errors.Is(err, ErrValidatorUnavailable) || errors.Is(err, ErrInvalidToken)):
				t.Errorf("Validate = %v, want only ErrValidatorUnavailable", err)
			}
		})
	}
}

// Keys given directly: keys without alg are kept when some algorithm of
// the profile takes them, encryption keys are kept but never used, and a
// symmetric key is refused whatever its use.
func TestJWKSGapsStaticKeys(t *testing.T) {
	as := newJWTTestAS(t)
	ecRaw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaRaw, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	encRaw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(raw any, kid string, use jwk.KeyUsageType) jwk.Key {
		t.Helper()
		k, err := jwk.FromRaw(raw)
		if err != nil {
			t.Fatal(err)
		}
		k.Set(jwk.KeyIDKey, kid)
		if use != "" {
			k.Set(jwk.KeyUsageKey, use)
		}
		return k
	}
	set := jwk.NewSet()
	set.AddKey(mk(ecRaw, "ec-no-alg", ""))
	set.AddKey(mk(rsaRaw, "rsa-no-alg", ""))
	set.AddKey(mk(encRaw, "enc", jwk.ForEncryption))
	v, err := NewJWTValidator(t.Context(), JWTOptions{Issuer: as.ts.URL, Keys: set, Now: as.clock.Now})
	if err != nil {
		t.Fatalf("NewJWTValidator with keys without alg and an encryption key: %v", err)
	}
	for _, tc := range []struct {
		kid string
		key any
		alg jwa.SignatureAlgorithm
	}{
		{"ec-no-alg", ecRaw, jwa.ES256},
		{"rsa-no-alg", rsaRaw, jwa.PS256},
		{"rsa-no-alg", rsaRaw, jwa.RS256},
	} {
		tok := sign(t, tc.key, tc.alg, map[string]any{jws.KeyIDKey: tc.kid}, as.claims())
		if _, err := v.Validate(t.Context(), tok); err != nil {
			t.Errorf("%s token of key %s (no alg): %v", tc.alg, tc.kid, err)
		}
	}
	tok := sign(t, encRaw, jwa.ES256, map[string]any{jws.KeyIDKey: "enc"}, as.claims())
	if _, err := v.Validate(t.Context(), tok); !errors.Is(err, ErrInvalidToken) || !errors.Is(err, ErrUnknownKey) {
		t.Errorf("token signed by the encryption key = %v, want ErrInvalidToken (ErrUnknownKey)", err)
	}

	// A key that fits no algorithm is refused with the reason of the first
	// algorithm of its own type in the profile's order (PS256 for RSA).
	t.Run("RSA-1024 without alg", func(t *testing.T) {
		small, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		set := jwk.NewSet()
		set.AddKey(mk(small, "small", ""))
		_, err = NewJWTValidator(t.Context(), JWTOptions{Issuer: "i", Keys: set})
		if err == nil || !strings.Contains(err.Error(), "PS256: RSA modulus") || !strings.Contains(err.Error(), "1024 bits") {
			t.Errorf("NewJWTValidator = %v, want the PS256 reason (1024 bits)", err)
		}
	})

	for name, use := range map[string]jwk.KeyUsageType{"no use": "", "use sig": jwk.ForSignature, "use enc": jwk.ForEncryption} {
		t.Run("symmetric key, "+name, func(t *testing.T) {
			set := jwk.NewSet()
			set.AddKey(mk([]byte("0123456789abcdef0123456789abcdef"), "hs", use))
			_, err := NewJWTValidator(t.Context(), JWTOptions{Issuer: "i", Keys: set})
			if err == nil || !strings.Contains(err.Error(), "asymmetric") {
				t.Errorf("NewJWTValidator = %v, want the symmetric key refused", err)
			}
		})
	}
}
