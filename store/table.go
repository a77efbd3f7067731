package store

import (
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// table is a bounded map from TokenHash to records with an expiry, split into
// shards that each have a lock and an LRU list (golang-lru). Lookups use Peek,
// so list order is insertion order: the oldest entry is the next to expire in
// the common case of one lifetime per kind. Each write reclaims up to two
// expired entries from the old end, so expired records are freed without a
// sweep. A full shard never evicts a live record (that would let one client
// invalidate everybody's tokens by minting many): it reclaims expired ones
// from the old end and otherwise refuses the write with ErrFull.
//
// Each record has an owner (the client it was issued to): an owner may hold
// at most perOwner live records of the table, so that one client cannot fill
// it for the others.
type table[V any] struct {
	shards   []tableShard[V]
	owner    func(*V) string
	perOwner int

	ownersMu sync.Mutex
	owners   map[string]*ownerCount
}

type tableShard[V any] struct {
	mu  sync.Mutex
	lru *simplelru.LRU[TokenHash, *item[V]]
	cap int
}

// item is one record; exp is its expiry in Unix nanoseconds, consumed marks a
// redeemed code or rotated refresh token kept until it expires. chain holds,
// for a refresh token, the tokens it was rotated from that are still kept
// (oldest first), so that a rotation can forget the oldest.
type item[V any] struct {
	v        V
	exp      int64
	consumed bool
	chain    []TokenHash
}

// state is the outcome of a lookup.
type state int

const (
	live state = iota
	missing
	expired
	consumed
)

// entriesPerShard and maxShards size the shards as in dpop.MemoryReplayCache.
const (
	entriesPerShard = 4096
	maxShards       = 16
	reclaimPerWrite = 2
)

// newTable returns a table of capacity records, of which one owner may hold
// perOwner.
func newTable[V any](capacity, perOwner int, owner func(*V) string) *table[V] {
	n := min(max(capacity/entriesPerShard, 1), maxShards)
	t := &table[V]{shards: make([]tableShard[V], n), owner: owner, perOwner: max(perOwner, 1), owners: map[string]*ownerCount{}}
	for i := range t.shards {
		size := capacity / n
		if i < capacity%n {
			size++
		}
		// Every removal (explicit, reclaimed, replaced) passes through the
		// eviction callback, which keeps the owner counts exact.
		l, _ := simplelru.NewLRU[TokenHash, *item[V]](max(size, 1), func(_ TokenHash, it *item[V]) { t.release(t.owner(&it.v), it.exp) })
		t.shards[i] = tableShard[V]{lru: l, cap: max(size, 1)}
	}
	return t
}

// claim counts one more record for owner, expiring at exp, or reports false
// when the owner holds its share of live records already.
func (t *table[V]) claim(owner string, exp, now int64) bool {
	t.ownersMu.Lock()
	defer t.ownersMu.Unlock()
	c := t.owners[owner]
	if c == nil {
		c = &ownerCount{slots: map[int64]int{}}
		t.owners[owner] = c
	}
	c.expire(now)
	if c.live >= t.perOwner {
		return false
	}
	c.add(exp)
	return true
}

// release counts one record of owner, expiring at exp, less.
func (t *table[V]) release(owner string, exp int64) {
	t.ownersMu.Lock()
	defer t.ownersMu.Unlock()
	if c := t.owners[owner]; c != nil {
		c.remove(exp)
		if len(c.slots) == 0 {
			delete(t.owners, owner)
		}
	}
}

func (t *table[V]) shard(h TokenHash) *tableShard[V] {
	return &t.shards[int(h[0])%len(t.shards)]
}

// reclaim frees up to reclaimPerWrite expired entries from the old end.
func (s *tableShard[V]) reclaim(now int64) {
	for range reclaimPerWrite {
		_, it, ok := s.lru.GetOldest()
		if !ok || it.exp > now {
			return
		}
		s.lru.RemoveOldest()
	}
}

// put stores v under h until exp, replacing any record there.
func (t *table[V]) put(h TokenHash, v V, exp, now int64) error {
	s := t.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	return t.putLocked(s, h, &item[V]{v: v, exp: exp}, now)
}

// putLocked stores it under h in s, whose lock is held. It fails with
// ErrFull when the shard has no room without dropping a live record, or when
// the record's owner holds its share of the table.
func (t *table[V]) putLocked(s *tableShard[V], h TokenHash, it *item[V], now int64) error {
	s.reclaim(now)
	s.lru.Remove(h)
	for s.lru.Len() >= s.cap {
		_, old, ok := s.lru.GetOldest()
		if !ok || old.exp > now {
			return ErrFull
		}
		s.lru.RemoveOldest()
	}
	if !t.claim(t.owner(&it.v), it.exp, now) {
		return ErrShareFull
	}
	// The LRU has room (checked above), so Add evicts nothing uncounted.
	s.lru.Add(h, it)
	return nil
}

// getLocked looks h up, removing it if it has expired.
func (s *tableShard[V]) getLocked(h TokenHash, now int64) (*item[V], state) {
	it, ok := s.lru.Peek(h)
	switch {
	case !ok:
		return nil, missing
	case it.exp <= now:
		s.lru.Remove(h)
		return nil, expired
	case it.consumed:
		return it, consumed
	}
	return it, live
}

// get returns a copy of the record under h and its state.
func (t *table[V]) get(h TokenHash, now int64) (V, state) { return t.lookup(h, now, false) }

// consume marks a live record consumed and returns it with state live; a
// record consumed before is returned with state consumed.
func (t *table[V]) consume(h TokenHash, now int64) (V, state) { return t.lookup(h, now, true) }

func (t *table[V]) lookup(h TokenHash, now int64, consume bool) (V, state) {
	s := t.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	it, st := s.getLocked(h, now)
	if it == nil {
		var zero V
		return zero, st
	}
	if consume && st == live {
		it.consumed = true
	}
	return it.v, st
}

// rotate consumes old, if check accepts its record, and stores v under h, as
// one step: both shards are locked, in a fixed order. The new record's chain
// is old's chain followed by old, cut to its keep most recent tokens; the
// tokens cut off are removed after the locks are released.
func (t *table[V]) rotate(old, h TokenHash, v V, exp, now int64, keep int, check func(V) error) (V, state, error) {
	var forget []TokenHash
	defer func() {
		for _, f := range forget {
			t.removeConsumed(f)
		}
	}()
	a, b := t.shard(old), t.shard(h)
	if a == b {
		a.mu.Lock()
		defer a.mu.Unlock()
	} else {
		first, second := a, b
		if int(old[0])%len(t.shards) > int(h[0])%len(t.shards) {
			first, second = b, a
		}
		first.mu.Lock()
		defer first.mu.Unlock()
		second.mu.Lock()
		defer second.mu.Unlock()
	}
	it, st := a.getLocked(old, now)
	if it == nil {
		var zero V
		return zero, st, nil
	}
	if st != live {
		return it.v, st, nil
	}
	if err := check(it.v); err != nil {
		return it.v, st, err
	}
	chain := append(append(make([]TokenHash, 0, len(it.chain)+1), it.chain...), old)
	if n := len(chain) - keep; n > 0 {
		forget, chain = chain[:n], chain[n:]
	}
	if err := t.putLocked(b, h, &item[V]{v: v, exp: exp, chain: chain}, now); err != nil {
		forget = nil
		return it.v, st, err
	}
	it.consumed = true
	it.chain = nil
	return it.v, live, nil
}

// removeConsumed deletes h if its record is consumed: a token saved again
// under the hash of a rotated one is live and stays.
func (t *table[V]) removeConsumed(h TokenHash) {
	s := t.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.lru.Peek(h); ok && it.consumed {
		s.lru.Remove(h)
	}
}

// remove deletes h.
func (t *table[V]) remove(h TokenHash) {
	s := t.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lru.Remove(h)
}

// len counts the entries held, expired ones not yet reclaimed included.
func (t *table[V]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}
