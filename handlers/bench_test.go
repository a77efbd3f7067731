package handlers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/benchref"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// The cost of one token request, in process: form parsing, client
// authentication, a full ES256 proof check with the replay cache, minting
// and storing the token, the JSON answer. Compare with
// BenchmarkRawECDSAVerify from the same run (goal: at most 1.4×).

func benchTokenEndpoint(b *testing.B, edit func(*Config)) {
	m, err := store.NewMemory(store.MemoryOptions{MaxReplayEntries: 2*b.N + 4096, MaxAccessTokens: b.N + 4096, ClientShare: 100}) // shards fill unevenly
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if err := m.SaveClient(ctx, &store.Client{ID: confID, SecretHash: store.HashSecret(confSecret),
		GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"read"}, DPoPBound: true}); err != nil {
		b.Fatal(err)
	}
	// Every proof is charged to the client, as always, with a budget no
	// benchmark exhausts: one client sends every request.
	cfg := Config{Issuer: "https://as.example.com", Store: m, DPoP: dpop.VerifierOptions{Quota: dpop.Quota{PerClient: math.MaxInt}}}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	signer := newSigner(b)
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = proofBy(b, signer, "POST", cfg.Issuer+DefaultPaths.Token, dpop.ProofOptions{})
	}
	h := srv.TokenHandler()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := dpoptest.ClientCredentialsRequest(DefaultPaths.Token, confID, confSecret, proofs[i])
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkTokenClientCredentials: opaque access tokens (the default).
func BenchmarkTokenClientCredentials(b *testing.B) { benchTokenEndpoint(b, nil) }

// BenchmarkTokenClientCredentialsJWT: RFC 9068 access tokens signed with
// ES256, which adds one signature per request.
func BenchmarkTokenClientCredentialsJWT(b *testing.B) {
	set := jwk.NewSet()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	k, err := jwk.FromRaw(priv)
	if err != nil {
		b.Fatal(err)
	}
	k.Set(jwk.KeyIDKey, "bench")
	k.Set(jwk.AlgorithmKey, jwa.ES256)
	set.AddKey(k)
	benchTokenEndpoint(b, func(c *Config) { c.AccessTokenFormat, c.SigningKeys = FormatJWT, set })
}

// BenchmarkRawECDSAVerify is the floor, measured in this process: see
// internal/benchref.
func BenchmarkRawECDSAVerify(b *testing.B) { benchref.RawECDSAVerify(b, 420) }
