package dpop

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math"
	"time"

	"github.com/dpopkit/dpop/internal/bounded"
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
	// shards holds the entries, each only its expiry. Entries are never
	// refreshed by a lookup, so each shard's list order is insertion order
	// and the oldest entry is the first that could be reclaimed.
	shards bounded.Table[ReplayKey, replayExpiry]
	now    func() time.Time
}

// replayExpiry is a replay entry: its expiry, in Unix nanoseconds.
type replayExpiry int64

// Expiry implements bounded.Value.
func (e replayExpiry) Expiry() int64 { return int64(e) }

// entriesPerShard is the capacity below which a cache has one shard; larger
// caches get up to maxReplayShards. The memory store's tables share them.
const (
	entriesPerShard = bounded.EntriesPerShard
	maxReplayShards = bounded.MaxShards
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
	return &MemoryReplayCache{shards: bounded.New[ReplayKey, replayExpiry](opts.Capacity, nil), now: opts.Now}, nil
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
	exp := now + int64(ttl)
	if exp < now { // saturate rather than wrap into the past
		exp = math.MaxInt64
	}
	// Keys are SHA-256 outputs, so the byte that picks a shard spreads them
	// evenly.
	inserted, full := c.shards.Insert(key, replayExpiry(exp), now)
	if full {
		return false, ErrReplayCacheFull
	}
	return inserted, nil
}

// Capacity returns the number of entries the cache holds when full.
func (c *MemoryReplayCache) Capacity() int { return c.shards.Capacity() }

// Len returns the number of entries held, expired ones not yet reclaimed
// included.
func (c *MemoryReplayCache) Len() int { return c.shards.Len() }

// ReplayEntries implements [ReplayCacheStats]: Len.
func (c *MemoryReplayCache) ReplayEntries() int { return c.Len() }
