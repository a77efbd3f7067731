package store

import (
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultClientCacheTTL is how long a store out of process (Redis,
// PostgreSQL) keeps a client it read, when its options do not say.
const DefaultClientCacheTTL = time.Second

// DefaultClientCacheSize is how many clients a ClientCache keeps at most.
const DefaultClientCacheSize = 1024

// ClientCache keeps the clients a store out of process has read, for a
// short time, in process: the token, authorization and PAR endpoints read
// their client on every request (RFC 6749 §2.3), and a cached read saves
// that round trip. It is bounded (least recently used clients go first)
// and keeps only clients that exist, so a request naming an unknown client
// takes no room and a client registered anywhere is seen at once.
//
// A client saved through the store that owns the cache replaces its entry
// at once; one saved through another process is seen within the TTL: until
// then, this process may still use the client's previous registration (an
// old secret, key set or redirect URI). Keep the TTL short. A nil
// *ClientCache caches nothing.
type ClientCache struct {
	ttl     time.Duration
	now     func() time.Time
	clients *lru.Cache[string, cachedClient]
	// saves counts Put and Forget calls: a read that began before one
	// is not kept (PutRead), so that it cannot bring back a client saved
	// since.
	saves atomic.Uint64
}

// cachedClient is a client and the time its entry ends.
type cachedClient struct {
	c   *Client
	end time.Time
}

// NewClientCache returns a cache keeping up to size clients (0:
// DefaultClientCacheSize) for ttl each, by the clock now (nil: time.Now),
// or nil, which caches nothing, when ttl is not positive.
func NewClientCache(ttl time.Duration, size int, now func() time.Time) *ClientCache {
	if ttl <= 0 {
		return nil
	}
	if size <= 0 {
		size = DefaultClientCacheSize
	}
	if now == nil {
		now = time.Now
	}
	l, _ := lru.New[string, cachedClient](size) // size is positive
	return &ClientCache{ttl: ttl, now: now, clients: l}
}

// Get returns a copy of the client with that id if the cache holds it and
// its entry has not ended.
func (cc *ClientCache) Get(id string) (*Client, bool) {
	if cc == nil {
		return nil, false
	}
	e, ok := cc.clients.Get(id)
	if !ok {
		return nil, false
	}
	if !cc.now().Before(e.end) {
		cc.clients.Remove(id)
		return nil, false
	}
	return e.c.Clone(), true
}

// Put keeps a copy of c, just saved, for the TTL, replacing any entry of
// its id.
func (cc *ClientCache) Put(c *Client) {
	if cc == nil || c == nil {
		return
	}
	cc.saves.Add(1)
	cc.clients.Add(c.ID, cachedClient{c: c.Clone(), end: cc.now().Add(cc.ttl)})
}

// Generation is taken before a client is read from the store, for PutRead.
func (cc *ClientCache) Generation() uint64 {
	if cc == nil {
		return 0
	}
	return cc.saves.Load()
}

// PutRead keeps a copy of c, read from the store, for the TTL, unless a
// client was saved or forgotten through the cache since gen was taken:
// the read may then be older than the save, and is not kept.
func (cc *ClientCache) PutRead(c *Client, gen uint64) {
	if cc == nil || c == nil || cc.saves.Load() != gen {
		return
	}
	cc.clients.Add(c.ID, cachedClient{c: c.Clone(), end: cc.now().Add(cc.ttl)})
}

// Forget drops the entry of id, if any.
func (cc *ClientCache) Forget(id string) {
	if cc != nil {
		cc.saves.Add(1)
		cc.clients.Remove(id)
	}
}
