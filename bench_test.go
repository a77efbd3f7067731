package dpop

import (
	"strings"
	"testing"

	"github.com/dpopkit/dpop/internal/benchref"
)

// BenchmarkVerifyES256 is a full verification of a fresh ES256 proof, replay
// cache included: the per-request cost at a token endpoint. Compare it with
// BenchmarkRawECDSAVerify from the same run: the goal is at most 1.25×.
func BenchmarkVerifyES256(b *testing.B) {
	k := newTestKey(b, ES256)
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = k.proof(b, nil)
	}
	v := newTestVerifier(b, func(o *VerifierOptions) { o.ReplayCache = mustMemoryCache(b, 2*b.N+4096) })
	req := tokenRequest("")
	benchVerify(b, v, req, proofs)
}

// BenchmarkVerifyES256Resource is the same at a resource: ath included.
func BenchmarkVerifyES256Resource(b *testing.B) {
	k := newTestKey(b, ES256)
	const token = "an-opaque-access-token-of-typical-length-abcdefgh"
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = k.proof(b, func(c map[string]any) {
			c["htm"], c["htu"], c["ath"] = "GET", "https://server.example.com/api/hello", ATH(token)
		})
	}
	v := newTestVerifier(b, func(o *VerifierOptions) { o.ReplayCache = mustMemoryCache(b, 2*b.N+4096) })
	req := Request{Method: "GET", URL: "https://server.example.com/api/hello", Proofs: []string{""}, AccessToken: token}
	benchVerify(b, v, req, proofs)
}

// BenchmarkRawECDSAVerify is the physical limit of a proof check: hashing a
// message as long as a proof's signing input and verifying a P-256 signature
// with the standard library.
func BenchmarkRawECDSAVerify(b *testing.B) {
	p := newTestKey(b, ES256).proof(b, nil)
	benchref.RawECDSAVerify(b, strings.LastIndexByte(p, '.'))
}

// BenchmarkVerifyES256NewKey is the cache-miss path: every proof comes with a
// header never seen before (a new client), so the jwk is parsed each time.
func BenchmarkVerifyES256NewKey(b *testing.B) {
	keys := make([]*testKey, 64)
	for i := range keys {
		keys[i] = namedTestKey(b, "bench-"+itoa(int64(i)), ES256)
	}
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = keys[i%len(keys)].proof(b, nil)
	}
	v := newTestVerifier(b, func(o *VerifierOptions) {
		o.ReplayCache = mustMemoryCache(b, 2*b.N+4096)
		o.KeyCacheSize = 1 // every other proof misses
	})
	req := tokenRequest("")
	benchVerify(b, v, req, proofs)
}

// benchVerify times the verification of each proof (one per iteration) in
// req; v's replay cache must hold b.N entries (callers give it 2·b.N and
// more, since a sharded cache's shards fill unevenly).
func benchVerify(b *testing.B, v *Verifier, req Request, proofs []string) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.Proofs[0] = proofs[i]
		if _, err := v.Verify(bg, req); err != nil {
			b.Fatal(err)
		}
	}
}
