package dpop

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// ReplayKey identifies one proof in a [ReplayCache]: the SHA-256 hash of the
// proof key's thumbprint and the proof's jti (RFC 9449 §11.1). Hashing keeps
// attacker-chosen strings out of the cache and gives every entry the same
// small size.
type ReplayKey [sha256.Size]byte

// NewReplayKey returns the replay key of a proof with the given key
// thumbprint (jkt) and jti.
func NewReplayKey(jkt, jti string) ReplayKey {
	h := sha256.New()
	// jkt is a fixed-length base64url string and cannot contain the
	// separator, so the encoding is unambiguous.
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var k ReplayKey
	h.Sum(k[:0])
	return k
}

// String returns the key in unpadded base64url, for stores that key by text.
func (k ReplayKey) String() string { return base64.RawURLEncoding.EncodeToString(k[:]) }

// ReplayCache remembers the proofs a verifier has accepted, so that each is
// accepted at most once (RFC 9449 §11.1).
//
// Insert must be atomic: of any number of concurrent calls with the same key
// while an earlier entry is alive, exactly one returns true. An entry must
// live for its whole ttl, to the millisecond, and end soon after (adaptertest
// accepts the key again 300 ms after): an entry that ends early lets a
// replayed proof in, and one that outlives its ttl takes room that the
// cache's capacity was sized without. An implementation that cannot record an entry (full,
// unreachable) returns an error, and the verifier refuses the proof: a cache
// must never make room by forgetting an entry that is still alive.
type ReplayCache interface {
	// Insert records key for ttl and reports whether it was absent (true:
	// first use) or already present (false: a replay).
	Insert(ctx context.Context, key ReplayKey, ttl time.Duration) (inserted bool, err error)
}

// DefaultReplayCacheCapacity is the number of entries a [MemoryReplayCache]
// holds when no capacity is given: about 20 MB (under 200 bytes an entry,
// measured), enough for 1,400 proofs a second with the default freshness
// window. With server nonces, entries live as long as the nonce (up to two
// nonce steps, 4 minutes by default), so the same capacity holds about 420
// proofs a second: size the cache for the traffic. Shards fill unevenly, so
// a full cache may refuse a new entry when it holds about 99% of its
// capacity.
const DefaultReplayCacheCapacity = 100_000

// MemoryReplayCacheOptions configures [NewMemoryReplayCache].
type MemoryReplayCacheOptions struct {
	// Capacity is the maximum number of live entries. Default
	// DefaultReplayCacheCapacity. When the cache is full and its oldest entry
	// has not expired, Insert fails with ErrReplayCacheFull.
	Capacity int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// MemoryReplayCache is a bounded, in-process [ReplayCache] built on LRU lists
// (golang-lru), split into shards by key so that concurrent inserts rarely
// wait for one another. It is safe for concurrent use. It fails closed: when a
// shard is full it reclaims only entries that have expired, and otherwise
// refuses the new one.
type MemoryReplayCache struct {
	shards []replayShard
	now    func() time.Time
}

// replayShard is one lock and one LRU list. Entries are never refreshed by a
// lookup, so the list order is insertion order and the oldest entry is the
// first that could be reclaimed. Values are expiry times in Unix nanoseconds.
type replayShard struct {
	mu  sync.Mutex
	lru *simplelru.LRU[ReplayKey, int64]
	cap int
	_   [40]byte // keeps neighbouring shards' locks off one cache line
}

// entriesPerShard is the capacity below which a cache has one shard; larger
// caches get up to maxReplayShards.
const (
	entriesPerShard = 4096
	maxReplayShards = 16
)

// NewMemoryReplayCache returns an empty in-memory replay cache.
func NewMemoryReplayCache(opts MemoryReplayCacheOptions) (*MemoryReplayCache, error) {
	if opts.Capacity < 0 {
		return nil, errors.New("dpop: negative replay cache capacity")
	}
	if opts.Capacity == 0 {
		opts.Capacity = DefaultReplayCacheCapacity
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	n := min(max(opts.Capacity/entriesPerShard, 1), maxReplayShards)
	c := &MemoryReplayCache{shards: make([]replayShard, n), now: opts.Now}
	for i := range c.shards {
		// The capacity is split exactly: the first shards take the remainder.
		size := opts.Capacity / n
		if i < opts.Capacity%n {
			size++
		}
		l, err := simplelru.NewLRU[ReplayKey, int64](size, nil)
		if err != nil {
			return nil, err
		}
		c.shards[i] = replayShard{lru: l, cap: size}
	}
	return c, nil
}

// Insert implements [ReplayCache].
func (c *MemoryReplayCache) Insert(ctx context.Context, key ReplayKey, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if ttl <= 0 {
		return false, errors.New("dpop: replay entry needs a positive ttl")
	}
	now := c.now().UnixNano()
	// Keys are SHA-256 outputs, so any byte spreads them evenly.
	s := &c.shards[int(key[0])%len(c.shards)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.lru.Peek(key); ok {
		if now < exp {
			return false, nil
		}
		s.lru.Remove(key)
	}
	for s.lru.Len() >= s.cap {
		_, exp, ok := s.lru.GetOldest()
		if !ok || now < exp {
			return false, ErrReplayCacheFull
		}
		s.lru.RemoveOldest()
	}
	exp := now + int64(ttl)
	if exp < now { // saturate rather than wrap into the past
		exp = math.MaxInt64
	}
	s.lru.Add(key, exp)
	return true, nil
}

// Capacity returns the number of entries the cache holds when full.
func (c *MemoryReplayCache) Capacity() int {
	n := 0
	for i := range c.shards {
		n += c.shards[i].cap
	}
	return n
}

// Len returns the number of entries held, expired ones not yet reclaimed
// included.
func (c *MemoryReplayCache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}
