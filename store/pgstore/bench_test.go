package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
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
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The token endpoint (client credentials, ES256 proof, opaque token) and
// the middleware (opaque token, ES256 proof with ath), in process, over
// store.NewMemory and over PostgreSQL, for the ratio. Proofs are made before
// the timer starts. Every PostgreSQL benchmark reports stmts/op, the
// statements (each one round trip) sent per request, counted by a pgx
// tracer. Run with -cpu 1,2.

// statements counts the statements a pool sends.
type statements struct{ n atomic.Int64 }

// unlimited charges every proof to its parties, as always, with budgets no
// benchmark exhausts: one client and one token send every request.
var unlimited = dpop.Quota{PerClient: math.MaxInt, PerGrant: math.MaxInt}

func (c *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (*statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// backend makes a store for one benchmark run, with room for n requests,
// and a function that returns the statements sent so far (nil for memory).
type backend func(b *testing.B, n int) (store.Store, func() int64)

func backends() []struct {
	name string
	open backend
} {
	return []struct {
		name string
		open backend
	}{
		{"memory", func(b *testing.B, n int) (store.Store, func() int64) {
			m, err := store.NewMemory(store.MemoryOptions{MaxReplayEntries: 2*n + 4096, MaxAccessTokens: 2*n + 4096, ClientShare: 100})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { m.Close() })
			return m, nil
		}},
		{"postgres", func(b *testing.B, n int) (store.Store, func() int64) {
			count := &statements{}
			pool := newPool(b, databaseURL(b), func(c *pgxpool.Config) { c.ConnConfig.Tracer = count })
			s := openStore(b, pool, freshSchema(b, pool), nil)
			return s, count.n.Load
		}},
	}
}

// measure runs one request per iteration from GOMAXPROCS goroutines and
// reports the statements per request.
func measure(b *testing.B, sent func() int64, request func(i int)) {
	var next atomic.Int64
	var before int64
	if sent != nil {
		before = sent()
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			request(int(next.Add(1) - 1))
		}
	})
	b.StopTimer()
	if sent != nil {
		b.ReportMetric(float64(sent()-before)/float64(b.N), "stmts/op")
	}
}

func BenchmarkTokenEndpoint(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			st, sent := be.open(b, b.N)
			registerClients(b, st)
			srv, err := handlers.New(handlers.Config{Issuer: publicURL, Store: st, DPoP: dpop.VerifierOptions{Quota: unlimited}})
			if err != nil {
				b.Fatal(err)
			}
			h := srv.TokenHandler()
			signer := newSigner(b)
			proofs := make([]string, b.N)
			for i := range proofs {
				proofs[i] = proof(b, signer, "POST", "/oauth2/token", dpop.ProofOptions{})
			}
			const body = "grant_type=client_credentials"
			measure(b, sent, func(i int) {
				req := httptest.NewRequest("POST", "/oauth2/token", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(confID, confSecret)
				req.Header.Set("DPoP", proofs[i])
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Errorf("%d %s", w.Code, w.Body)
				}
			})
		})
	}
}

func BenchmarkMiddleware(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			st, sent := be.open(b, b.N)
			signer := newSigner(b)
			var raw [32]byte
			rand.Read(raw[:])
			token := base64.RawURLEncoding.EncodeToString(raw[:])
			now := time.Now()
			if err := st.SaveAccessToken(bg, store.HashToken(token), &store.AccessToken{
				GrantID: "g", ClientID: confID, Subject: confID, Scope: "read", JKT: signer.JKT(),
				IssuedAt: now, ExpiresAt: now.Add(time.Hour),
			}); err != nil {
				b.Fatal(err)
			}
			mw, err := middleware.New(middleware.Options{
				ResourceURL: publicURL,
				DPoP:        dpop.VerifierOptions{ReplayCache: st, Quota: unlimited},
				Validator:   middleware.StoreValidator{Store: st},
			})
			if err != nil {
				b.Fatal(err)
			}
			h := mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
			proofs := make([]string, b.N)
			for i := range proofs {
				proofs[i] = proof(b, signer, "GET", apiPath, dpop.ProofOptions{AccessToken: token})
			}
			measure(b, sent, func(i int) {
				req := httptest.NewRequest("GET", apiPath, nil)
				req.Header.Set("Authorization", "DPoP "+token)
				req.Header.Set("DPoP", proofs[i])
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusNoContent {
					b.Errorf("%d %s", w.Code, w.Body)
				}
			})
		})
	}
}
