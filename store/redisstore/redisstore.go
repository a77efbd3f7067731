package redisstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is the key prefix used when Options.Prefix is empty.
const DefaultPrefix = "dpop:"

// accessGroups is the number of hash tags access tokens are spread over (see
// the package documentation): at most 16, one hex digit. Changing it moves
// every access token key.
const accessGroups = 16

// Options configures [New].
type Options struct {
	// Client is the caller's Redis client (a single server, Sentinel or
	// Cluster). Required. The store never closes it.
	Client redis.UniversalClient
	// Prefix starts every key, so that several stores (or other data) can
	// share one database. Default DefaultPrefix. It must not contain '{'
	// or '}', which would change the hash tags Redis Cluster routes by.
	Prefix string
	// Now is the clock lookups compare expiries with. Default time.Now.
	Now func() time.Time
	// SkipEvictionCheck skips New's check that Redis runs with
	// maxmemory-policy noeviction, for a managed Redis that refuses the
	// CONFIG command. The operator then guarantees noeviction: under an
	// evicting policy a flood of writes makes Redis drop replay entries (a
	// captured proof is accepted again), consumed codes and refresh tokens
	// (a replay is no longer detected) and clients.
	SkipEvictionCheck bool
	// ClientCacheTTL is how long GetClient keeps a client it read in
	// process (store.ClientCache), saving the round trip on the next
	// requests of that client. SaveClient through this store replaces the
	// entry at once; a client saved by another process is seen within
	// ClientCacheTTL, until when this one may still honour its previous
	// registration. Unknown clients are never kept. Default
	// store.DefaultClientCacheTTL (one second); negative: no cache.
	ClientCacheTTL time.Duration
	// Replicas, when positive, makes every write that a failover must not
	// lose wait until that many replicas have it (Redis WAIT, on the
	// connection of the write, to the master holding the key): each replay
	// cache insert (RFC 9449 §11.1), code and pushed request consumption,
	// refresh token rotation, and token or grant revocation. A write fewer
	// replicas acknowledge within ReplicaTimeout fails with
	// ErrNotReplicated, and the kit refuses the request (503): the store
	// fails closed rather than accept what a failover could forget. Redis
	// replicates asynchronously, so without it a write acknowledged by a
	// master that dies before a replica copied it is lost when that
	// replica is promoted: a proof then replays, a code is redeemed twice,
	// a rotated refresh token is accepted again, a revoked token or grant
	// comes back (see the package documentation). A Cluster shard (or a
	// Sentinel group) with fewer live replicas than Replicas refuses these
	// writes until one returns. Default 0: no waiting. It needs Client to
	// be a *redis.Client (single server or Sentinel) or a
	// *redis.ClusterClient. On a Cluster these writes go to the master's
	// own connection, which does not follow MOVED or ASK redirections:
	// while a slot migrates between masters, writes to its keys fail (503)
	// until the migration ends.
	Replicas int
	// ReplicaTimeout bounds each wait for Replicas acknowledgements.
	// Default DefaultReplicaTimeout; it is rounded up to the millisecond.
	ReplicaTimeout time.Duration
}

// evictionCheckTimeout bounds New's check of the eviction policy.
const evictionCheckTimeout = 2 * time.Second

// Store is a [store.Store] on Redis. It is safe for concurrent use, holds no
// state of its own besides its options, and any number of Store values (in
// any number of processes) over the same Redis and prefix see the same data.
type Store struct {
	c              redis.UniversalClient
	prefix         string
	now            func() time.Time
	replicas       int
	replicaTimeout time.Duration
	clients        *store.ClientCache
	decoded        decodedTokens
	closed         atomic.Bool
}

var (
	_ store.Store              = (*Store)(nil)
	_ store.PushedRequestStore = (*Store)(nil)
	_ store.Pinger             = (*Store)(nil)
)

// New returns a store over opts.Client. Unless opts.SkipEvictionCheck is
// set, it first reads the server's maxmemory-policy (CONFIG GET, within
// about two seconds; on a Cluster or Ring, of every node) and fails unless
// it is noeviction: an evicting Redis would let a flood of writes drop
// replay entries, consumed codes and tokens, and clients. A policy it cannot
// read (Redis unreachable, CONFIG disabled or denied) fails New as well, so
// that the store never starts on a guess. Past New, an unreachable server
// shows as errors from the methods.
func New(opts Options) (*Store, error) {
	if opts.Client == nil {
		return nil, errors.New("redisstore: Options.Client is required")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, errors.New("redisstore: Options.Prefix must not contain braces (they would change the Redis Cluster hash tags)")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	switch {
	case opts.Replicas < 0:
		return nil, errors.New("redisstore: Options.Replicas must not be negative")
	case opts.ReplicaTimeout < 0:
		return nil, errors.New("redisstore: Options.ReplicaTimeout must not be negative")
	case opts.ReplicaTimeout == 0:
		opts.ReplicaTimeout = DefaultReplicaTimeout
	}
	// WAIT takes whole milliseconds, and 0 would wait for ever.
	opts.ReplicaTimeout = time.Duration(ceilMillis(opts.ReplicaTimeout)) * time.Millisecond
	if opts.Replicas > 0 {
		if err := checkReplicaClient(opts.Client); err != nil {
			return nil, err
		}
	}
	if !opts.SkipEvictionCheck {
		if err := checkNoEviction(opts.Client); err != nil {
			return nil, err
		}
	}
	if opts.ClientCacheTTL == 0 {
		opts.ClientCacheTTL = store.DefaultClientCacheTTL
	}
	return &Store{c: opts.Client, prefix: opts.Prefix, now: opts.Now,
		replicas: opts.Replicas, replicaTimeout: opts.ReplicaTimeout,
		clients: store.NewClientCache(opts.ClientCacheTTL, 0, opts.Now), decoded: newDecodedTokens()}, nil
}

// checkNoEviction reads maxmemory-policy from every node of c and reports an
// error unless each one runs with noeviction. The check ends after
// evictionCheckTimeout even if the client's own timeouts are longer.
func checkNoEviction(c redis.UniversalClient) error {
	ctx, cancel := context.WithTimeout(context.Background(), evictionCheckTimeout)
	defer cancel()
	done := make(chan error, 1) // the goroutine never blocks on a late send
	go func() {
		// A Cluster or Ring has several servers, each with its own policy.
		if sh, ok := c.(interface {
			ForEachShard(context.Context, func(context.Context, *redis.Client) error) error
		}); ok {
			done <- sh.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error {
				return evictionPolicy(ctx, n, n.Options().Addr)
			})
			return
		}
		done <- evictionPolicy(ctx, c, "")
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("redisstore: cannot read Redis's maxmemory-policy (CONFIG GET): no answer within %v; "+
			"if the server refuses CONFIG (managed Redis), set Options.SkipEvictionCheck and make sure it runs with maxmemory-policy noeviction", evictionCheckTimeout)
	}
}

// evictionPolicy checks the policy of one server; addr names it in errors
// ("" for a single server).
func evictionPolicy(ctx context.Context, c redis.Cmdable, addr string) error {
	at := ""
	if addr != "" {
		at = " at " + addr
	}
	m, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return fmt.Errorf("redisstore: cannot read the maxmemory-policy of Redis%s (CONFIG GET): %w; "+
			"if the server refuses CONFIG (managed Redis), set Options.SkipEvictionCheck and make sure it runs with maxmemory-policy noeviction", at, err)
	}
	policy, ok := m["maxmemory-policy"]
	switch {
	case !ok:
		return fmt.Errorf("redisstore: Redis%s did not report its maxmemory-policy (CONFIG GET answered %v); "+
			"set Options.SkipEvictionCheck only if it runs with maxmemory-policy noeviction", at, m)
	case policy != "noeviction":
		return fmt.Errorf("redisstore: Redis%s runs with maxmemory-policy %s, which evicts keys when memory is full: "+
			"a flood of writes would drop replay entries (a captured proof accepted again), consumed codes and tokens, and clients; "+
			"set maxmemory-policy noeviction", at, policy)
	}
	return nil
}

// Close marks the store closed: every later call fails with
// store.ErrClosed. It does not close Options.Client, which belongs to the
// caller (and may serve other stores).
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

// Ping implements store.Pinger: a PING to the server (on a Cluster or
// Ring, to the node go-redis picks), within ctx. It fails with
// store.ErrClosed after Close.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.begin(ctx); err != nil {
		return err
	}
	if err := s.c.Ping(ctx).Err(); err != nil {
		return fail(ctx, "ping", err)
	}
	return nil
}

// begin checks the context and the store before any command is sent, so
// that a cancelled call does nothing, and returns the time now.
func (s *Store) begin(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, fmt.Errorf("redisstore: %w", err)
	}
	if s.closed.Load() {
		return time.Time{}, store.ErrClosed
	}
	return s.now(), nil
}

// fail wraps an error of Redis (network, timeout, context) for op. It is
// never turned into a store sentinel: the kit answers 503 for it. When the
// context ended during the call, the error wraps ctx.Err() too (go-redis
// may report an expired deadline as a network timeout), so that callers can
// tell their own deadline from an outage.
func fail(ctx context.Context, op string, err error) error {
	cerr := ctx.Err()
	if d, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(d) {
		// The socket deadline, set from ctx, fired before ctx's own timer.
		cerr = context.DeadlineExceeded
	}
	if cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("redisstore: %s: %w: %w", op, cerr, err)
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

// Keys; see the package documentation for the scheme.

var b64 = base64.RawURLEncoding

const refreshTag = "{r}"

func (s *Store) clientKey(id string) string {
	return s.prefix + "cl:" + b64.EncodeToString([]byte(id))
}

func (s *Store) codeKey(h store.TokenHash) string { return s.prefix + "c:" + h.String() }

func (s *Store) pushedKey(h store.TokenHash) string { return s.prefix + "par:" + h.String() }

func (s *Store) replayKey(k dpop.ReplayKey) string { return s.prefix + "rp:" + k.String() }

// accessTag is the hash tag of an access token's group: the low four bits of
// the hash's first byte, as one hex digit.
func accessTag(h store.TokenHash) string {
	return "{a" + string("0123456789abcdef"[h[0]%accessGroups]) + "}"
}

func (s *Store) accessKey(h store.TokenHash) string {
	return s.prefix + accessTag(h) + "at:" + h.String()
}

func (s *Store) refreshKey(h store.TokenHash) string {
	return s.prefix + refreshTag + "rt:" + h.String()
}

// consumedPrefix is the start of the keys listing each grant's consumed
// refresh tokens; the rotation script appends the encoded grant id it finds
// in the rotated record.
func (s *Store) consumedPrefix() string { return s.prefix + refreshTag + "rc:" }

// grantPrefix is the start of the revocation keys beside tokens of tag; the
// scripts append the encoded grant id they find in a record.
func (s *Store) grantPrefix(tag string) string { return s.prefix + tag + "g:" }

// grantKeys are every copy of grant's revocation: one per access group and
// one beside the refresh tokens.
func (s *Store) grantKeys(grant string) []string {
	id := b64.EncodeToString([]byte(grant))
	keys := make([]string, 0, accessGroups+1)
	var h store.TokenHash
	for i := range accessGroups {
		h[0] = byte(i)
		keys = append(keys, s.grantPrefix(accessTag(h))+id)
	}
	return append(keys, s.grantPrefix(refreshTag)+id)
}

// ceilMillis is d in whole milliseconds, rounded up.
func ceilMillis(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond > 0 {
		ms++
	}
	return ms
}

// ceilUnixMilli is t in Unix milliseconds, rounded up.
func ceilUnixMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}
