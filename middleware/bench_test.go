package middleware

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/internal/benchref"
	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// The cost of one API request through the middleware, in process: the
// Authorization header, the token check, a full ES256 proof check with ath
// and the replay cache, the principal in the context, a no-op handler.
// Compare with BenchmarkRawECDSAVerify of the same run (goal: at most 1.3×).

const benchResource = "https://api.example.com"

// benchMiddleware runs b.N requests, each with a fresh proof for token.
func benchMiddleware(b *testing.B, validator TokenValidator, signer *dpop.Signer, token string, replay dpop.ReplayCache) {
	benchMiddlewareWith(b, Options{Validator: validator, DPoP: dpop.VerifierOptions{ReplayCache: replay}}, signer, token)
}

// benchMiddlewareWith is benchMiddleware with more options (ResourceURL and
// the quota are set here).
func benchMiddlewareWith(b *testing.B, opts Options, signer *dpop.Signer, token string) {
	opts.ResourceURL, opts.DPoP.Quota = benchResource, unlimited
	mw, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	proofs := make([]string, b.N)
	for i := range proofs {
		if proofs[i], err = signer.Proof("GET", benchResource+apiPath, dpop.ProofOptions{AccessToken: token}); err != nil {
			b.Fatal(err)
		}
	}
	req := httptest.NewRequest("GET", apiPath, nil)
	req.Header.Set("Authorization", "DPoP "+token)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.Header["Dpop"] = proofs[i : i+1]
		w := httptest.NewRecorder() // one per request: a response written once
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkMiddlewareOpaque: an opaque token looked up in the memory store.
func BenchmarkMiddlewareOpaque(b *testing.B) {
	m, err := store.NewMemory(store.MemoryOptions{MaxReplayEntries: 2*b.N + 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	signer := newSigner(b)
	token := randomToken()
	if err := m.SaveAccessToken(bg, store.HashToken(token), &store.AccessToken{ClientID: "demo", Subject: "alice", Scope: "read",
		JKT: signer.JKT(), Audience: []string{benchResource}, IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	benchMiddleware(b, StoreValidator{Store: m}, signer, token, m)
}

// BenchmarkRawECDSAVerify is the floor, measured in this process: see
// internal/benchref.
// unlimited charges every proof to its parties, as always, with budgets no
// benchmark exhausts: one client and one token send every request.
var unlimited = dpop.Quota{PerClient: math.MaxInt, PerGrant: math.MaxInt}

func BenchmarkRawECDSAVerify(b *testing.B) { benchref.RawECDSAVerify(b, 480) }

// BenchmarkMiddlewareJWT: an RFC 9068 access token issued by the handlers
// and verified with the authorization server's public keys (one more ES256
// verification per request than the opaque case).
func BenchmarkMiddlewareJWT(b *testing.B) {
	m, err := store.NewMemory(store.MemoryOptions{MaxReplayEntries: 2*b.N + 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	key, _ := jwk.FromRaw(priv)
	key.Set(jwk.KeyIDKey, "bench")
	key.Set(jwk.AlgorithmKey, jwa.ES256)
	set := jwk.NewSet()
	set.AddKey(key)
	const issuer = "https://as.example.com"
	as, err := handlers.New(handlers.Config{Issuer: issuer, Store: m, AccessTokenFormat: handlers.FormatJWT, SigningKeys: set, Audience: []string{benchResource}})
	if err != nil {
		b.Fatal(err)
	}
	signer := newSigner(b)
	token, err := as.AccessTokens().Issue(bg, &store.AccessToken{ClientID: "demo", Subject: "alice", Scope: "read",
		JKT: signer.JKT(), Audience: []string{benchResource}, IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	public, err := jwk.PublicSetOf(set)
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewJWTValidator(bg, JWTOptions{Issuer: issuer, Keys: public})
	if err != nil {
		b.Fatal(err)
	}
	benchMiddleware(b, v, signer, token, m)
}
