package handlers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

func benchTokenEndpoint(b *testing.B, edit func(*Config)) { benchTokenRequests(b, edit, false) }

// benchTokenRequests runs client credentials requests authenticated with the
// client secret, or with private_key_jwt (an ES256 assertion, made before
// the timer starts, checked and its jti recorded per request).
func benchTokenRequests(b *testing.B, edit func(*Config), assertion bool) {
	m, err := store.NewMemory(store.MemoryOptions{MaxReplayEntries: 2*b.N + 4096, MaxAccessTokens: b.N + 4096, ClientShare: 100}) // shards fill unevenly
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	client := &store.Client{ID: confID, SecretHash: store.HashSecret(confSecret),
		GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"read"}, DPoPBound: true}
	es := key(b, "ec256", "ES256", "es")
	if assertion {
		client.SecretHash, client.JWKS = nil, jwksOf(b, es)
	}
	if err := m.SaveClient(ctx, client); err != nil {
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
	proofs, bodies := make([]string, b.N), make([]string, b.N)
	for i := range proofs {
		proofs[i] = proofBy(b, signer, "POST", cfg.Issuer+DefaultPaths.Token, dpop.ProofOptions{})
		if assertion {
			f := assertionForm(assertionFor(b, es, confID, cfg.Issuer, time.Now(), nil))
			f.Set("grant_type", GrantClientCredentials)
			bodies[i] = f.Encode()
		}
	}
	h := srv.TokenHandler()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := dpoptest.ClientCredentialsRequest(DefaultPaths.Token, confID, confSecret, proofs[i])
		if assertion {
			req = httptest.NewRequest(http.MethodPost, DefaultPaths.Token, strings.NewReader(bodies[i]))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("DPoP", proofs[i])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkTokenClientCredentials: opaque access tokens (the default).
func BenchmarkTokenClientCredentials(b *testing.B) { benchTokenEndpoint(b, nil) }

// BenchmarkTokenClientCredentialsPrivateKeyJWT: the client authenticates
// with an ES256 private_key_jwt assertion (RFC 7523) instead of its secret:
// one signature check and one replay-cache entry more per request. Compare
// with BenchmarkTokenClientCredentials from the same run.
func BenchmarkTokenClientCredentialsPrivateKeyJWT(b *testing.B) { benchTokenRequests(b, nil, true) }

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
