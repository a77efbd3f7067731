package store_test

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// BenchmarkMemoryCodeConsume measures ConsumeCode of a code saved just
// before (both calls are in each iteration; the save is reported separately
// by BenchmarkMemoryCodeSave). Run with -cpu 1,2.
func BenchmarkMemoryCodeConsume(b *testing.B) {
	m, ctx, code := benchStore(b)
	var next atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h := counterHash(next.Add(1))
			if err := m.SaveCode(ctx, h, code); err != nil {
				b.Fatal(err)
			}
			if _, err := m.ConsumeCode(ctx, h); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMemoryCodeSave is the save half of BenchmarkMemoryCodeConsume.
func BenchmarkMemoryCodeSave(b *testing.B) {
	m, ctx, code := benchStore(b)
	var next atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := m.SaveCode(ctx, counterHash(next.Add(1)), code); err != nil {
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

// benchStore returns a store closed when b ends, a context and a code record,
// with b's timer reset.
func benchStore(b *testing.B) (*store.Memory, context.Context, *store.AuthorizationCode) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	b.ReportAllocs()
	b.ResetTimer()
	return m, context.Background(), &store.AuthorizationCode{GrantID: "g", ClientID: "demo", Scope: "read", ExpiresAt: time.Now().Add(time.Hour)}
}
