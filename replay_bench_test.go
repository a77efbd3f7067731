package dpop

import (
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// spreadKey makes distinct replay keys from a counter without hashing, with
// the bytes that pick a shard well mixed (splitmix64).
func spreadKey(n uint64) ReplayKey {
	z := n + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	var k ReplayKey
	binary.LittleEndian.PutUint64(k[:], z)
	binary.LittleEndian.PutUint64(k[8:], n)
	return k
}

// BenchmarkMemoryReplayInsert measures Insert of fresh keys into a full cache
// whose oldest entries have expired: the steady state of a busy server. Run
// with -cpu 1,2 to see contention.
func BenchmarkMemoryReplayInsert(b *testing.B) {
	c, err := NewMemoryReplayCache(MemoryReplayCacheOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ok, err := c.Insert(bg, spreadKey(next.Add(1)), time.Microsecond)
			if err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
}

// BenchmarkMemoryReplayBytesPerEntry reports the heap taken per entry of a
// cache holding 1,000,000 live entries. Run with -benchtime 1x.
func BenchmarkMemoryReplayBytesPerEntry(b *testing.B) {
	const entries = 1_000_000
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		// Shards fill unevenly, so leave 5% room: a sharded cache refuses a
		// little before its nominal capacity.
		c, err := NewMemoryReplayCache(MemoryReplayCacheOptions{Capacity: entries + entries/20})
		if err != nil {
			b.Fatal(err)
		}
		for i := range uint64(entries) {
			if ok, err := c.Insert(bg, spreadKey(i), time.Hour); !ok || err != nil {
				b.Fatal(i, ok, err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if c.Len() != entries {
			b.Fatal(c.Len())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/entries, "bytes/entry")
		runtime.KeepAlive(c)
	}
}
