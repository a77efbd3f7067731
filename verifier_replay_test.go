package dpop

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Checklist 1.8: a proof is accepted at most once, under concurrency too, and
// a cache that is full or failing refuses.
func TestCheck8Replay(t *testing.T) {
	es := newTestKey(t, ES256)
	t.Run("second use refused", func(t *testing.T) {
		v := newTestVerifier(t, nil)
		p := es.proof(t, nil)
		if _, err := v.Verify(bg, tokenRequest(p)); err != nil {
			t.Fatal(err)
		}
		got, err := v.Verify(bg, tokenRequest(p))
		wantRefused(t, got, err, CodeInvalidProof, ErrReplay)
	})
	t.Run("same jti with a new signature refused", func(t *testing.T) {
		v := newTestVerifier(t, nil)
		jti := freshJTI()
		if _, err := v.Verify(bg, tokenRequest(es.proof(t, func(c map[string]any) { c["jti"] = jti }))); err != nil {
			t.Fatal(err)
		}
		got, err := v.Verify(bg, tokenRequest(es.proof(t, func(c map[string]any) { c["jti"] = jti; c["extra"] = 1 })))
		wantRefused(t, got, err, CodeInvalidProof, ErrReplay)
	})
	t.Run("same jti under another key accepted", func(t *testing.T) {
		v := newTestVerifier(t, nil)
		jti := freshJTI()
		for _, k := range []*testKey{es, namedTestKey(t, "other-es256", ES256)} {
			if _, err := v.Verify(bg, tokenRequest(k.proof(t, func(c map[string]any) { c["jti"] = jti }))); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("refused proofs take no room", func(t *testing.T) {
		cache := mustMemoryCache(t, 1)
		v := newTestVerifier(t, func(o *VerifierOptions) { o.ReplayCache = cache })
		jti := freshJTI()
		_, err := v.Verify(bg, tokenRequest(es.proof(t, func(c map[string]any) { c["jti"] = jti; c["htm"] = "GET" })))
		if !errors.Is(err, ErrHTM) {
			t.Fatalf("err = %v", err)
		}
		if _, err := v.Verify(bg, tokenRequest(es.proof(t, func(c map[string]any) { c["jti"] = jti }))); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("64 concurrent presentations, exactly one accepted", func(t *testing.T) {
		v := newTestVerifier(t, nil)
		p := es.proof(t, nil)
		var accepted, replays atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 64 {
			wg.Go(func() {
				<-start
				_, err := v.Verify(bg, tokenRequest(p))
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, ErrReplay):
					replays.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		if accepted.Load() != 1 || replays.Load() != 63 {
			t.Fatalf("accepted %d, replays %d; want 1 and 63", accepted.Load(), replays.Load())
		}
	})
	t.Run("tiny cache under a flood never accepts a replay", func(t *testing.T) {
		cache := mustMemoryCache(t, 4)
		v := newTestVerifier(t, func(o *VerifierOptions) { o.ReplayCache = cache })
		var proofs []string
		for range 32 {
			proofs = append(proofs, es.proof(t, nil))
		}
		accepted := map[string]int{}
		var full int
		for round := range 3 {
			for _, p := range proofs {
				_, err := v.Verify(bg, tokenRequest(p))
				switch {
				case err == nil:
					accepted[p]++
				case errors.Is(err, ErrReplayCacheFull):
					full++
					if err.(*Error).Code != CodeServerError {
						t.Errorf("full cache code %q", err.(*Error).Code)
					}
				case errors.Is(err, ErrReplay):
				default:
					t.Fatalf("round %d: %v", round, err)
				}
			}
		}
		for p, n := range accepted {
			if n != 1 {
				t.Fatalf("proof %s… accepted %d times", p[:20], n)
			}
		}
		if len(accepted) != 4 || full != 3*32-4-4*2 {
			t.Errorf("accepted %d distinct, %d refused as full; want 4 and %d", len(accepted), full, 3*32-4-4*2)
		}
	})
	t.Run("failing cache refuses", func(t *testing.T) {
		v := newTestVerifier(t, func(o *VerifierOptions) { o.ReplayCache = failingCache{} })
		got, err := v.Verify(bg, tokenRequest(es.proof(t, nil)))
		wantRefused(t, got, err, CodeServerError, ErrReplayCacheUnavailable)
	})
	t.Run("entry outlives the freshness window", func(t *testing.T) {
		rec := &recordingCache{}
		v := newTestVerifier(t, func(o *VerifierOptions) { o.ReplayCache = rec })
		if _, err := v.Verify(bg, tokenRequest(es.proof(t, nil))); err != nil {
			t.Fatal(err)
		}
		if rec.ttl < DefaultMaxAge+DefaultLeeway {
			t.Fatalf("ttl %v shorter than MaxAge+Leeway", rec.ttl)
		}
	})
}

func mustMemoryCache(t testing.TB, capacity int) *MemoryReplayCache {
	t.Helper()
	c, err := NewMemoryReplayCache(MemoryReplayCacheOptions{Capacity: capacity})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type failingCache struct{}

func (failingCache) Insert(context.Context, ReplayKey, time.Duration) (bool, error) {
	return false, errors.New("connection refused")
}

type recordingCache struct{ ttl time.Duration }

func (c *recordingCache) Insert(_ context.Context, _ ReplayKey, ttl time.Duration) (bool, error) {
	c.ttl = ttl
	return true, nil
}

func TestMemoryReplayCache(t *testing.T) {
	now := testNow
	clock := func() time.Time { return now }
	c, err := NewMemoryReplayCache(MemoryReplayCacheOptions{Capacity: 2, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	k1, k2, k3 := NewReplayKey("a", "1"), NewReplayKey("a", "2"), NewReplayKey("a", "3")
	insert := func(k ReplayKey, ttl time.Duration) (bool, error) { return c.Insert(bg, k, ttl) }
	mustInsert := func(k ReplayKey, ttl time.Duration, want bool) {
		t.Helper()
		got, err := insert(k, ttl)
		if err != nil || got != want {
			t.Fatalf("Insert = %v, %v; want %v", got, err, want)
		}
	}
	mustInsert(k1, time.Minute, true)
	mustInsert(k1, time.Minute, false)
	mustInsert(k2, 2*time.Minute, true)
	if _, err := insert(k3, time.Minute); !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("full cache: %v", err)
	}
	now = now.Add(time.Minute) // k1 expired: reclaimed for k3, k2 still alive
	mustInsert(k3, time.Minute, true)
	mustInsert(k2, time.Minute, false)
	// k1 was reclaimed, but k2 and k3 are alive: no room, and nothing alive
	// is evicted to make some.
	if _, err := insert(k1, time.Minute); !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("full cache: %v", err)
	}
	now = now.Add(time.Minute)
	mustInsert(k1, time.Minute, true)
	if c.Len() != 2 {
		t.Fatalf("len %d", c.Len())
	}
}

func TestMemoryReplayCacheOptions(t *testing.T) {
	if _, err := NewMemoryReplayCache(MemoryReplayCacheOptions{Capacity: -1}); err == nil {
		t.Error("negative capacity accepted")
	}
	c := mustMemoryCache(t, 0)
	if _, err := c.Insert(bg, ReplayKey{}, 0); err == nil {
		t.Error("zero ttl accepted")
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if ok, err := c.Insert(ctx, ReplayKey{}, time.Second); err == nil || ok {
		t.Error("cancelled context accepted")
	}
	if k := NewReplayKey("jkt", "jti"); k == NewReplayKey("jk", "tjti") || strings.ContainsAny(k.String(), "+/=") {
		t.Error("replay key is ambiguous or not base64url")
	}
}

// A sharded cache keeps the same promise: bounded, and never a replay, even
// when a flood fills it.
func TestMemoryReplayCacheShardedFlood(t *testing.T) {
	const capacity = 16 * entriesPerShard
	c := mustMemoryCache(t, capacity)
	if len(c.shards) != maxReplayShards {
		t.Fatalf("%d shards", len(c.shards))
	}
	accepted, full := 0, 0
	for i := range capacity + capacity/4 {
		k := NewReplayKey("jkt", itoa(int64(i)))
		ok, err := c.Insert(bg, k, time.Hour)
		switch {
		case errors.Is(err, ErrReplayCacheFull):
			full++
		case err != nil || !ok:
			t.Fatalf("insert %d: %v %v", i, ok, err)
		default:
			accepted++
			if again, err := c.Insert(bg, k, time.Hour); again || err != nil {
				t.Fatalf("replay of %d accepted (%v)", i, err)
			}
		}
	}
	if accepted > capacity || c.Len() != accepted || full != capacity+capacity/4-accepted || accepted < capacity*9/10 {
		t.Fatalf("accepted %d, refused %d, len %d, capacity %d", accepted, full, c.Len(), capacity)
	}
	// A ttl that would overflow the expiry saturates instead of wrapping
	// into the past, where the entry would count as expired.
	c = mustMemoryCache(t, 1)
	k := NewReplayKey("x", "huge ttl")
	if ok, err := c.Insert(bg, k, time.Duration(1<<63-1)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, err := c.Insert(bg, k, time.Second); ok || err != nil {
		t.Fatalf("replay after a huge ttl: %v %v", ok, err)
	}
}
