package store

import (
	"sync"

	"github.com/dpopkit/dpop/internal/bounded"
)

// table is a bounded map from TokenHash to records with an expiry: a
// bounded.Table, the sharded table dpop.MemoryReplayCache is built on.
// Lookups do not reorder it, so the oldest entry of a shard is the next to
// expire in the common case of one lifetime per kind. Each write reclaims up
// to two expired entries from the old end, so expired records are freed
// without a sweep. A full shard never evicts a live record (that would let
// one client invalidate everybody's tokens by minting many): it reclaims
// expired ones from the old end and otherwise refuses the write with
// ErrFull.
//
// Each record has an owner (the client it was issued to): an owner may hold
// at most perOwner live records of the table, so that one client cannot fill
// it for the others.
type table[V any] struct {
	shards   bounded.Table[TokenHash, *item[V]]
	owner    func(*V) string
	perOwner int

	ownersMu sync.Mutex
	owners   map[string]*ownerCount
}

// shard is one shard of a table.
type shard[V any] = bounded.Shard[TokenHash, *item[V]]

// item is one record; exp is its expiry in Unix nanoseconds, consumed marks
// a redeemed code or rotated refresh token kept until it expires. chain
// holds, for a refresh token, the tokens it was rotated from that are still
// kept (oldest first), so that a rotation can forget the oldest.
type item[V any] struct {
	v        V
	exp      int64
	consumed bool
	chain    []TokenHash
}

// Expiry implements bounded.Value.
func (it *item[V]) Expiry() int64 { return it.exp }

// state is the outcome of a lookup.
type state int

const (
	live state = iota
	missing
	expired
	consumed
)

// reclaimPerWrite is the number of expired records a write reclaims ahead.
const reclaimPerWrite = 2

// newTable returns a table of capacity records, of which one owner may hold
// perOwner.
func newTable[V any](capacity, perOwner int, owner func(*V) string) *table[V] {
	t := &table[V]{owner: owner, perOwner: max(perOwner, 1), owners: map[string]*ownerCount{}}
	// Every removal (explicit, reclaimed, replaced) passes through the
	// eviction callback, which keeps the owner counts exact.
	t.shards = bounded.New(capacity, func(_ TokenHash, it *item[V]) { t.release(t.owner(&it.v), it.exp) })
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

// put stores v under h until exp, replacing any record there.
func (t *table[V]) put(h TokenHash, v V, exp, now int64) error {
	s := t.shards.Shard(h)
	s.Lock()
	defer s.Unlock()
	return t.putLocked(s, h, &item[V]{v: v, exp: exp}, now)
}

// putLocked stores it under h in s, whose lock is held. It fails with
// ErrFull when the shard has no room without dropping a live record, or when
// the record's owner holds its share of the table.
func (t *table[V]) putLocked(s *shard[V], h TokenHash, it *item[V], now int64) error {
	s.Reclaim(now, reclaimPerWrite)
	s.Remove(h)
	if !s.MakeRoom(now) {
		return ErrFull
	}
	if !t.claim(t.owner(&it.v), it.exp, now) {
		return ErrShareFull
	}
	s.Add(h, it)
	return nil
}

// getLocked looks h up in s, whose lock is held, removing it if it has
// expired.
func getLocked[V any](s *shard[V], h TokenHash, now int64) (*item[V], state) {
	it, st := s.Get(h, now)
	switch {
	case st == bounded.Missing:
		return nil, missing
	case st == bounded.Expired:
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
	s := t.shards.Shard(h)
	s.Lock()
	defer s.Unlock()
	it, st := getLocked(s, h, now)
	if it == nil {
		var zero V
		return zero, st
	}
	if consume && st == live {
		it.consumed = true
	}
	return it.v, st
}

// rotate consumes old, if check accepts its record, and stores v under h
// until exp, as one step: both shards are locked, in a fixed order. The new
// record's chain is old's chain followed by old, cut to its keep most recent
// tokens; the tokens cut off are removed after the locks are released.
func (t *table[V]) rotate(old, h TokenHash, v V, exp, now int64, keep int, check func(V) error) (V, state, error) {
	var forget []TokenHash
	defer func() {
		for _, f := range forget {
			t.removeConsumed(f)
		}
	}()
	a, b := t.shards.LockPair(old, h)
	defer t.shards.UnlockPair(a, b)
	it, st := getLocked(a, old, now)
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
	s := t.shards.Shard(h)
	s.Lock()
	defer s.Unlock()
	if it, ok := s.Peek(h); ok && it.consumed {
		s.Remove(h)
	}
}

// remove deletes h.
func (t *table[V]) remove(h TokenHash) { t.shards.Remove(h) }
