package testkit

import (
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/store"
)

// The cost of one request of the kit over a store, in process (no HTTP
// listener), beside the same request over the in-memory store: the token
// endpoint (client credentials, ES256 proof, opaque token) and the
// middleware (opaque token, ES256 proof with ath). Proofs are made before
// the timer starts; requests run in parallel (b.RunParallel), as a server
// serves them. A store that counts its round trips to its server reports
// them per request.

// Unlimited charges every proof to its parties, as always, with budgets no
// benchmark exhausts: one client and one token send every request.
var Unlimited = dpop.Quota{PerClient: math.MaxInt, PerGrant: math.MaxInt}

// BenchStore is a store the benchmarks run over, a sub-benchmark of its
// Name. Open makes the store of one run, with room for n requests, and
// returns it with a function that counts the round trips it has made so
// far (nil when it makes none), which are reported per request as Unit
// ("stmts/op", say).
type BenchStore struct {
	Name string
	Unit string
	Open func(b *testing.B, n int) (s store.Store, roundTrips func() int64)
}

// BenchMemory is the in-memory store, as a sub-benchmark named name.
func BenchMemory(name string) BenchStore {
	return BenchStore{Name: name, Open: func(b *testing.B, n int) (store.Store, func() int64) {
		m, err := store.NewMemory(store.MemoryOptions{MaxReplayEntries: 2*n + 4096, MaxAccessTokens: 2*n + 4096, ClientShare: 100})
		fatalIf(b, err, "NewMemory")
		b.Cleanup(func() { m.Close() })
		return m, nil
	}}
}

// BenchTokenEndpoint measures, over each of stores, a client credentials
// request of the confidential client with an ES256 proof, answered with an
// opaque token.
func BenchTokenEndpoint(b *testing.B, stores ...BenchStore) {
	for _, bs := range stores {
		b.Run(bs.Name, func(b *testing.B) {
			s, roundTrips := bs.Open(b, b.N)
			RegisterClients(b, s)
			h := AuthServer(b, PublicURL, s, dpop.VerifierOptions{Quota: Unlimited}).TokenHandler()
			proofs := benchProofs(b, dpoptest.NewSigner(b), "POST", TokenPath, "")
			measure(b, roundTrips, bs.Unit, http.StatusOK, h, func(i int) *http.Request {
				return dpoptest.ClientCredentialsRequest(TokenPath, ConfID, ConfSecret, proofs[i])
			})
		})
	}
}

// BenchMiddleware measures, over each of stores, an API request with an
// opaque DPoP-bound token and an ES256 proof with ath.
func BenchMiddleware(b *testing.B, stores ...BenchStore) {
	for _, bs := range stores {
		b.Run(bs.Name, func(b *testing.B) {
			s, roundTrips := bs.Open(b, b.N)
			signer := dpoptest.NewSigner(b)
			token, now := RandomToken(), time.Now()
			fatalIf(b, s.SaveAccessToken(bg, store.HashToken(token), &store.AccessToken{
				GrantID: "g", ClientID: ConfID, Subject: ConfID, Scope: "read", JKT: signer.JKT(), Audience: []string{PublicURL},
				IssuedAt: now, ExpiresAt: now.Add(time.Hour),
			}), "SaveAccessToken")
			protect := Protect(b, PublicURL, s, dpop.VerifierOptions{Quota: Unlimited})
			h := protect(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
			proofs := benchProofs(b, signer, "GET", APIPath, token)
			measure(b, roundTrips, bs.Unit, http.StatusNoContent, h, func(i int) *http.Request {
				req := httptest.NewRequest("GET", APIPath, nil)
				req.Header.Set("Authorization", "DPoP "+token)
				req.Header.Set("DPoP", proofs[i])
				return req
			})
		})
	}
}

// benchProofs makes b.N proofs by s for method and path at PublicURL, for
// token unless it is empty.
func benchProofs(b *testing.B, s *dpop.Signer, method, path, token string) []string {
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = Proof(b, s, method, path, dpop.ProofOptions{AccessToken: token})
	}
	return proofs
}

// measure serves request(i) with h, for each iteration i, from GOMAXPROCS
// goroutines; each must be answered with status. It reports the round
// trips per request as unit when roundTrips is not nil.
func measure(b *testing.B, roundTrips func() int64, unit string, status int, h http.Handler, request func(i int) *http.Request) {
	var next atomic.Int64
	var before int64
	if roundTrips != nil {
		before = roundTrips()
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, request(int(next.Add(1)-1)))
			if w.Code != status {
				b.Errorf("%d %s, want %d", w.Code, w.Body, status)
				return
			}
		}
	})
	b.StopTimer()
	if roundTrips != nil {
		b.ReportMetric(float64(roundTrips()-before)/float64(b.N), unit)
	}
}
