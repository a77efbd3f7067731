package redisstore_test

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/middleware"
	"github.com/dpopkit/dpop/store"
	"github.com/redis/go-redis/v9"
)

// The cost of one request of the kit over Redis, beside the same request
// over the in-memory store, in process (no HTTP listener): the token
// endpoint (client credentials, ES256 proof, opaque token) and the
// middleware (opaque token, ES256 proof with ath). Run with
//
//	DPOPKIT_REDIS_URL=redis://127.0.0.1:6379/0 go test -run '^$' -bench . -cpu 1,2
//
// The Redis variants report redis-cmds/op: the round trips to Redis per
// request (one per command; a pipeline counts once), counted by a go-redis
// hook. Requests run in parallel (b.RunParallel), as a server serves them.

// countHook counts round trips to Redis.
type countHook struct{ n atomic.Int64 }

// unlimited charges every proof to its parties, as always, with budgets no
// benchmark exhausts: one client and one token send every request.
var unlimited = dpop.Quota{PerClient: math.MaxInt, PerGrant: math.MaxInt}

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// benchStores runs bench over the memory store and over Redis.
func benchStores(b *testing.B, bench func(b *testing.B, s store.Store, rounds *countHook)) {
	b.Run("store=memory", func(b *testing.B) {
		m, err := store.NewMemory(store.MemoryOptions{MaxReplayEntries: 2*b.N + 4096, MaxAccessTokens: 2*b.N + 4096, ClientShare: 100})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		bench(b, m, nil)
	})
	b.Run("store=redis", func(b *testing.B) {
		c := newClient(b)
		hook := &countHook{}
		c.AddHook(hook)
		s, _ := newStore(b, c)
		bench(b, s, hook)
	})
}

// run runs b.N requests in parallel, each with its own proof, and reports
// the round trips to Redis per request.
func run(b *testing.B, proofs []string, rounds *countHook, serve func(proof string) int) {
	var next atomic.Int64
	b.ReportAllocs()
	if rounds != nil {
		rounds.n.Store(0)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if code := serve(proofs[next.Add(1)-1]); code != http.StatusOK {
				b.Errorf("status %d", code)
				return
			}
		}
	})
	b.StopTimer()
	if rounds != nil {
		b.ReportMetric(float64(rounds.n.Load())/float64(b.N), "redis-cmds/op")
	}
}

func makeProofs(b *testing.B, s *dpop.Signer, method, path string, opts dpop.ProofOptions) []string {
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = proof(b, s, method, path, opts)
	}
	return proofs
}

// BenchmarkTokenEndpoint: a client credentials request with an ES256 proof,
// answered with an opaque token: GetClient, the replay entry and the saved
// token are three round trips.
func BenchmarkTokenEndpoint(b *testing.B) {
	benchStores(b, func(b *testing.B, s store.Store, rounds *countHook) {
		if err := s.SaveClient(bg, &store.Client{ID: confID, SecretHash: store.HashSecret(confSecret),
			GrantTypes: []string{handlers.GrantClientCredentials}, Scopes: []string{"read"}, DPoPBound: true}); err != nil {
			b.Fatal(err)
		}
		srv, err := handlers.New(handlers.Config{Issuer: publicURL, Store: s, DPoP: dpop.VerifierOptions{Quota: unlimited}})
		if err != nil {
			b.Fatal(err)
		}
		h := srv.TokenHandler()
		proofs := makeProofs(b, newSigner(b), "POST", tokenPath, dpop.ProofOptions{})
		const body = "grant_type=client_credentials"
		run(b, proofs, rounds, func(p string) int {
			req := httptest.NewRequest("POST", tokenPath, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(confID, confSecret)
			req.Header.Set("DPoP", p)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			return w.Code
		})
	})
}

// BenchmarkMiddleware: an API request with an opaque DPoP-bound token and
// an ES256 proof with ath: the token lookup (one script) and the replay
// entry are two round trips.
func BenchmarkMiddleware(b *testing.B) {
	benchStores(b, func(b *testing.B, s store.Store, rounds *countHook) {
		signer := newSigner(b)
		const tok = "bench-access-token-0123456789abcdef0123456789"
		now := time.Now()
		if err := s.SaveAccessToken(bg, store.HashToken(tok), &store.AccessToken{GrantID: "g", ClientID: confID, Subject: confID,
			Scope: "read", JKT: signer.JKT(), IssuedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
		mw, err := middleware.New(middleware.Options{ResourceURL: publicURL, Validator: middleware.StoreValidator{Store: s},
			DPoP: dpop.VerifierOptions{ReplayCache: s, Quota: unlimited}})
		if err != nil {
			b.Fatal(err)
		}
		h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		proofs := makeProofs(b, signer, "GET", apiPath, dpop.ProofOptions{AccessToken: tok})
		run(b, proofs, rounds, func(p string) int {
			req := httptest.NewRequest("GET", apiPath, nil)
			req.Header.Set("Authorization", "DPoP "+tok)
			req.Header.Set("DPoP", p)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			return w.Code
		})
	})
}
