package bounded

import (
	"crypto/sha256"
	"strconv"
	"sync"
	"testing"
)

type key [32]byte

// exp is a value that is only its expiry, as dpop's replay entries are.
type exp int64

func (e exp) Expiry() int64 { return int64(e) }

// named is a value with a name, kept behind a pointer, as the store's
// records are.
type named struct {
	name string
	exp  int64
}

func (n *named) Expiry() int64 { return n.exp }

func k(s string) key { return sha256.Sum256([]byte(s)) }

// The capacity is split exactly over one shard per EntriesPerShard entries,
// at most MaxShards.
func TestNewSplitsCapacityExactly(t *testing.T) {
	for _, c := range []struct{ capacity, shards int }{
		{0, 1}, {1, 1}, {EntriesPerShard - 1, 1}, {2*EntriesPerShard + 5, 2},
		{MaxShards * EntriesPerShard, MaxShards}, {100_003, MaxShards},
	} {
		tb := New[key, exp](c.capacity, nil)
		if len(tb) != c.shards || tb.Capacity() != max(c.capacity, 1) {
			t.Errorf("capacity %d: %d shards holding %d, want %d shards", c.capacity, len(tb), tb.Capacity(), c.shards)
		}
		for i := range tb {
			if d := tb[0].cap - tb[i].cap; d < 0 || d > 1 {
				t.Errorf("capacity %d: shard %d holds %d, shard 0 %d", c.capacity, i, tb[i].cap, tb[0].cap)
			}
		}
	}
}

// Insert keeps a live entry, replaces an expired one, reclaims expired
// entries from the old end when full, and otherwise refuses.
func TestInsert(t *testing.T) {
	tb := New[key, exp](2, nil)
	ins := func(s string, e, now int64) (bool, bool) { return tb.Insert(k(s), exp(e), now) }
	want := func(gotIns, gotFull, ins, full bool) {
		t.Helper()
		if gotIns != ins || gotFull != full {
			t.Fatalf("Insert = %v, full %v; want %v, %v", gotIns, gotFull, ins, full)
		}
	}
	a, f := ins("a", 10, 0)
	want(a, f, true, false)
	a, f = ins("a", 10, 9)
	want(a, f, false, false)
	a, f = ins("b", 20, 0)
	want(a, f, true, false)
	a, f = ins("c", 20, 9)
	want(a, f, false, true)
	a, f = ins("c", 20, 10) // a expired at 10: reclaimed
	want(a, f, true, false)
	a, f = ins("a", 30, 10) // b and c alive: nothing is evicted
	want(a, f, false, true)
	a, f = ins("b", 30, 20) // b expired: replaced in place
	want(a, f, true, false)
	if tb.Len() != 2 {
		t.Fatalf("len %d", tb.Len())
	}
}

// Every entry that leaves the table passes through onEvict, with its value
// and expiry.
func TestShardOperationsAndEvictions(t *testing.T) {
	gone := map[key]int64{}
	tb := New(3, func(k key, v *named) {
		if v.name != strconv.FormatInt(v.exp, 10) {
			t.Errorf("evicted %q with expiry %d", v.name, v.exp)
		}
		gone[k] = v.exp
	})
	s := tb.Shard(k("x"))
	s.Lock()
	defer s.Unlock()
	for i, name := range []string{"a", "b", "c"} {
		if !s.MakeRoom(0) {
			t.Fatalf("no room for %s", name)
		}
		s.Add(k(name), &named{strconv.Itoa(10 * (i + 1)), int64(10 * (i + 1))})
	}
	if s.MakeRoom(5) {
		t.Fatal("room made in a shard full of live entries")
	}
	if v, st := s.Get(k("b"), 5); st != Live || v.name != "20" {
		t.Fatalf("Get b = %v, %v", v, st)
	}
	if _, st := s.Get(k("z"), 5); st != Missing {
		t.Fatalf("Get z = %v", st)
	}
	if _, st := s.Get(k("b"), 20); st != Expired || gone[k("b")] != 20 {
		t.Fatalf("Get expired b = %v, evicted %v", st, gone)
	}
	s.Reclaim(25, 5) // a has expired, c has not: only a goes
	if _, ok := s.Peek(k("a")); ok || gone[k("a")] != 10 {
		t.Fatalf("a not reclaimed: %v", gone)
	}
	if v, ok := s.Peek(k("c")); !ok || v.name != "30" {
		t.Fatal("live c reclaimed")
	}
	s.Remove(k("c"))
	if gone[k("c")] != 30 {
		t.Fatal("Remove did not evict c")
	}
}

// Pairs locked in opposite orders, concurrently, never deadlock; run with
// -race.
func TestLockPair(t *testing.T) {
	tb := New[key, exp](MaxShards*EntriesPerShard, nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				a, b := k(strconv.Itoa(i)), k(strconv.Itoa(i*7+1))
				if g%2 == 1 {
					a, b = b, a
				}
				sa, sb := tb.LockPair(a, b)
				if sa != tb.Shard(a) || sb != tb.Shard(b) {
					t.Error("LockPair returned the wrong shards")
				}
				if sa.MakeRoom(0) {
					sa.Add(a, exp(i))
				}
				sb.Remove(b)
				tb.UnlockPair(sa, sb)
			}
		})
	}
	wg.Wait()
}
