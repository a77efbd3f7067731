package pgstore

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/dpopkit/dpop/internal/benchref"
	"github.com/dpopkit/dpop/internal/testkit"
	"github.com/dpopkit/dpop/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The token endpoint (client credentials, ES256 proof, opaque token) and
// the middleware (opaque token, ES256 proof with ath), in process, over
// store.NewMemory and over PostgreSQL, for the ratio (testkit.BenchTokenEndpoint
// and testkit.BenchMiddleware). Every PostgreSQL benchmark reports stmts/op,
// the statements (each one round trip) sent per request, counted by a pgx
// tracer: one for each, with the test kits' OneRoundTrip, once the client is
// in the client cache and the token's first request was accepted.
// BenchmarkRawECDSAVerify is the reference. Run with -cpu 1,2.

// statements counts the statements a pool sends.
type statements struct{ n atomic.Int64 }

func (c *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (*statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// benchStores are the stores the benchmarks run over.
var benchStores = []testkit.BenchStore{
	testkit.BenchMemory("memory"),
	{Name: "postgres", Unit: "stmts/op", Open: func(b *testing.B, _ int) (store.Store, func() int64) {
		count := &statements{}
		pool := newPool(b, databaseURL(b), func(c *pgxpool.Config) { c.ConnConfig.Tracer = count })
		s := openStore(b, pool, freshSchema(b, pool), nil)
		return s, count.n.Load
	}},
}

func BenchmarkTokenEndpoint(b *testing.B) { testkit.BenchTokenEndpoint(b, benchStores...) }

func BenchmarkMiddleware(b *testing.B) { testkit.BenchMiddleware(b, benchStores...) }

// BenchmarkRawECDSAVerify is the floor of a proof check, the reference of
// the figures above.
func BenchmarkRawECDSAVerify(b *testing.B) { benchref.RawECDSAVerify(b, 480) }
