// Package bounded is the one bounded table of the kit: a map from 32-byte
// hashes to values with an expiry, split into shards that each have a lock
// and an insertion-ordered list (golang-lru's simplelru, read with Peek only,
// so that list order is insertion order). dpop.MemoryReplayCache and the
// memory store's tables of codes and tokens are built on it.
//
// A table never evicts a live entry: a shard that is full reclaims expired
// entries from its old end (in the common case of one lifetime per table,
// the oldest entry is the next to expire) and otherwise refuses the new one.
// Evicting live entries would let one party forget everybody's replay
// entries or tokens by filling the table.
//
// An entry's value carries its expiry (Value), in Unix nanoseconds; the
// entry is live while now < expiry.
package bounded

import (
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Key is the key of a table: a SHA-256 output (dpop.ReplayKey,
// store.TokenHash), whose first byte picks the shard.
type Key interface{ ~[32]byte }

// Value is the value of a table: it knows its expiry, in Unix nanoseconds.
// The expiry is the value's own, not a field beside it, so that an entry
// takes no more room: golang-lru's list element for a 32-byte key and an
// 8-byte value (an expiry, or a pointer to a record) takes 89 bytes of the
// 96-byte size class, and 8 bytes more would move it to the 112-byte one.
type Value interface{ Expiry() int64 }

// EntriesPerShard is the capacity below which a table has one shard; larger
// tables get one shard per EntriesPerShard entries, up to MaxShards.
const (
	EntriesPerShard = 4096
	MaxShards       = 16
)

// Table is a bounded table: its shards, of which the first byte of a key
// picks one. The capacity is split exactly among them, so shards fill
// unevenly and a full table may refuse an entry when it holds about 99% of
// its capacity. A Table is safe for concurrent use through its own methods
// and through shards locked as their documentation says.
type Table[K Key, V Value] []Shard[K, V]

// Shard is one lock and one insertion-ordered list. Its methods other than
// Lock and Unlock must be called with the lock held.
type Shard[K Key, V Value] struct {
	sync.Mutex
	lru *simplelru.LRU[K, V]
	cap int
	_   [40]byte // keeps neighbouring shards' locks off one cache line
}

// Status is the outcome of a lookup.
type Status int8

const (
	// Missing: no entry under the key.
	Missing Status = iota
	// Expired: the entry had expired, and was removed by the lookup.
	Expired
	// Live: the entry is alive.
	Live
)

// New returns an empty table of capacity entries (at least 1). onEvict, if
// not nil, is called, with the shard's lock held, for every entry that
// leaves the table (removed or reclaimed), so that a caller can keep counts
// of what the table holds.
func New[K Key, V Value](capacity int, onEvict func(k K, v V)) Table[K, V] {
	capacity = max(capacity, 1)
	n := min(max(capacity/EntriesPerShard, 1), MaxShards)
	t := make(Table[K, V], n)
	for i := range t {
		// The capacity is split exactly: the first shards take the remainder.
		size := capacity / n
		if i < capacity%n {
			size++
		}
		// size is positive, which is NewLRU's only error.
		l, _ := simplelru.NewLRU[K, V](size, onEvict)
		t[i].lru, t[i].cap = l, size
	}
	return t
}

// index returns the index of the shard that holds k.
func (t Table[K, V]) index(k K) int { return int(k[0]) % len(t) }

// Shard returns the shard that holds k.
func (t Table[K, V]) Shard(k K) *Shard[K, V] { return &t[t.index(k)] }

// LockPair locks the shards of a and b, once if they are the same, in the
// order of their indexes, so that two callers locking pairs cannot deadlock.
// Release them with UnlockPair.
func (t Table[K, V]) LockPair(a, b K) (sa, sb *Shard[K, V]) {
	i, j := t.index(a), t.index(b)
	sa, sb = &t[i], &t[j]
	switch {
	case i == j:
		sa.Lock()
	case i < j:
		sa.Lock()
		sb.Lock()
	default:
		sb.Lock()
		sa.Lock()
	}
	return sa, sb
}

// UnlockPair unlocks the shards LockPair locked.
func (t Table[K, V]) UnlockPair(sa, sb *Shard[K, V]) {
	sa.Unlock()
	if sb != sa {
		sb.Unlock()
	}
}

// Insert stores v under k unless a live entry is there already, and reports
// whether it stored it (false: a live entry was there and is kept). A full
// shard reclaims expired entries from its old end; when the oldest is alive,
// Insert stores nothing and reports full.
func (t Table[K, V]) Insert(k K, v V, now int64) (inserted, full bool) {
	s := t.Shard(k)
	s.Lock()
	defer s.Unlock()
	if e, ok := s.lru.Peek(k); ok {
		if now < e.Expiry() {
			return false, false
		}
		s.lru.Remove(k)
	}
	if !s.MakeRoom(now) {
		return false, true
	}
	s.lru.Add(k, v)
	return true, false
}

// Remove deletes k, if present.
func (t Table[K, V]) Remove(k K) {
	s := t.Shard(k)
	s.Lock()
	defer s.Unlock()
	s.lru.Remove(k)
}

// Capacity returns the number of entries the table holds when full.
func (t Table[K, V]) Capacity() int {
	n := 0
	for i := range t {
		n += t[i].cap
	}
	return n
}

// Len returns the number of entries held, expired ones not yet reclaimed
// included.
func (t Table[K, V]) Len() int {
	n := 0
	for i := range t {
		s := &t[i]
		s.Lock()
		n += s.lru.Len()
		s.Unlock()
	}
	return n
}

// Get returns the value under k and its status; an entry that has expired is
// removed.
func (s *Shard[K, V]) Get(k K, now int64) (V, Status) {
	v, ok := s.lru.Peek(k)
	switch {
	case !ok:
		return v, Missing
	case v.Expiry() <= now:
		s.lru.Remove(k)
		var zero V
		return zero, Expired
	}
	return v, Live
}

// Peek returns the value under k, expired or not, without removing it.
func (s *Shard[K, V]) Peek(k K) (V, bool) { return s.lru.Peek(k) }

// Remove deletes k, if present.
func (s *Shard[K, V]) Remove(k K) { s.lru.Remove(k) }

// Reclaim removes up to n expired entries from the old end.
func (s *Shard[K, V]) Reclaim(now int64, n int) {
	for range n {
		_, v, ok := s.lru.GetOldest()
		if !ok || now < v.Expiry() {
			return
		}
		s.lru.RemoveOldest()
	}
}

// MakeRoom reclaims expired entries from the old end until the shard has
// room for one more, and reports false, having removed nothing alive, when
// the oldest entry is alive.
func (s *Shard[K, V]) MakeRoom(now int64) bool {
	for s.lru.Len() >= s.cap {
		_, v, ok := s.lru.GetOldest()
		if !ok || now < v.Expiry() {
			return false
		}
		s.lru.RemoveOldest()
	}
	return true
}

// Add stores v under k. The caller has made room (MakeRoom) and removed any
// entry under k: Add itself never evicts.
func (s *Shard[K, V]) Add(k K, v V) { s.lru.Add(k, v) }
