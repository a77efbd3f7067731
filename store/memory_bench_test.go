package store_test

import (
	"context"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// BenchmarkMemoryCodeConsume measures ConsumeCode of a code saved just
// before (both calls are in each iteration; the save is reported separately
// by BenchmarkMemoryCodeSave). Codes live benchCodeLife saves, so the table
// holds tens of thousands of them and reclaims expired ones as it goes: the
// steady state of a busy server. Run with -cpu 1,2.
func BenchmarkMemoryCodeConsume(b *testing.B) { benchCodes(b, true) }

// BenchmarkMemoryCodeSave is the save half of BenchmarkMemoryCodeConsume.
func BenchmarkMemoryCodeSave(b *testing.B) { benchCodes(b, false) }

// benchCodes saves a code per iteration, from GOMAXPROCS goroutines, and
// with consume redeems it.
func benchCodes(b *testing.B, consume bool) {
	m, ctx, code, clock := benchStore(b)
	b.RunParallel(func(pb *testing.PB) {
		code := *code
		for pb.Next() {
			var n uint64
			n, code.ExpiresAt = clock.next()
			h := counterHash(n)
			if err := m.SaveCode(ctx, h, &code); err != nil {
				b.Fatal(err)
			}
			if !consume {
				continue
			}
			if _, err := m.ConsumeCode(ctx, h); err != nil {
				// On a loaded machine a goroutine may wait while the
				// others save a whole code lifetime: by the clock, its
				// code has then expired.
				if errors.Is(err, store.ErrExpired) && clock.saves.Load() >= n+benchCodeLife {
					continue
				}
				b.Fatal(err)
			}
		}
	})
}

// counterHash spreads a counter over the first bytes (which pick a shard)
// without the cost of SHA-256.
func counterHash(n uint64) store.TokenHash {
	var h store.TokenHash
	binary.LittleEndian.PutUint64(h[:], n*0x9e3779b97f4a7c15)
	binary.LittleEndian.PutUint64(h[8:], n)
	return h
}

// benchCodeLife is the lifetime of the benchmarks' codes, in saves: fewer
// than the default table holds (DefaultMaxCodes), and tens of thousands.
const benchCodeLife = 50_000

// benchClock is the store's clock in the benchmarks: one microsecond per
// code saved, whatever the speed or load of the machine, so that a code
// expires benchCodeLife saves after its own, never between its save and its
// consumption because the machine stalled.
type benchClock struct{ saves atomic.Uint64 }

func (c *benchClock) now() time.Time { return time.Unix(0, int64(c.saves.Load())*1e3) }

// next counts a save and returns its number and the expiry of its code.
func (c *benchClock) next() (uint64, time.Time) {
	n := c.saves.Add(1)
	return n, time.Unix(0, int64(n+benchCodeLife)*1e3)
}

// benchStore returns a store closed when b ends, a context, a code record
// (the benchmarks set its expiry) and the store's clock, with b's timer
// reset. One client saves every code, so it may take the whole table
// (ClientShare 100).
func benchStore(b *testing.B) (*store.Memory, context.Context, *store.AuthorizationCode, *benchClock) {
	clock := new(benchClock)
	m, err := store.NewMemory(store.MemoryOptions{ClientShare: 100, Now: clock.now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	b.ReportAllocs()
	b.ResetTimer()
	return m, context.Background(), &store.AuthorizationCode{GrantID: "g", ClientID: "demo", Scope: "read"}, clock
}
