package redisstore_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/dpopkit/dpop/internal/benchref"
	"github.com/dpopkit/dpop/internal/testkit"
	"github.com/dpopkit/dpop/store"
	"github.com/redis/go-redis/v9"
)

// The cost of one request of the kit over Redis, beside the same request
// over the in-memory store, in process (no HTTP listener): the token
// endpoint (client credentials, ES256 proof, opaque token: the client comes
// from the client cache, the replay entry and the saved token are one
// script, InsertAndSaveAccessToken) and the middleware (opaque token, ES256
// proof with ath: the token lookup and the replay entry are one script,
// UseAccessToken, once the token's first request was accepted); the test
// kits set OneRoundTrip. See testkit.BenchTokenEndpoint and
// testkit.BenchMiddleware; BenchmarkRawECDSAVerify is the reference. Run
// with
//
//	DPOPKIT_REDIS_URL=redis://127.0.0.1:6379/0 go test -run '^$' -bench . -cpu 1,2
//
// The Redis variants report redis-cmds/op: the round trips to Redis per
// request (one per command; a pipeline counts once), counted by a go-redis
// hook.

// countHook counts round trips to Redis.
type countHook struct{ n atomic.Int64 }

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

// benchStores are the stores the benchmarks run over.
var benchStores = []testkit.BenchStore{
	testkit.BenchMemory("store=memory"),
	{Name: "store=redis", Unit: "redis-cmds/op", Open: func(b *testing.B, _ int) (store.Store, func() int64) {
		c := newClient(b)
		hook := &countHook{}
		c.AddHook(hook)
		s, _ := newStore(b, c)
		return s, hook.n.Load
	}},
}

// BenchmarkTokenEndpoint: a client credentials request with an ES256 proof,
// answered with an opaque token.
func BenchmarkTokenEndpoint(b *testing.B) { testkit.BenchTokenEndpoint(b, benchStores...) }

// BenchmarkMiddleware: an API request with an opaque DPoP-bound token and
// an ES256 proof with ath.
func BenchmarkMiddleware(b *testing.B) { testkit.BenchMiddleware(b, benchStores...) }

// BenchmarkRawECDSAVerify is the floor of a proof check, the reference of
// the figures above.
func BenchmarkRawECDSAVerify(b *testing.B) { benchref.RawECDSAVerify(b, 480) }
