package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/bounded"
)

// Default capacities of a Memory store.
const (
	DefaultMaxClients       = 10_000
	DefaultMaxCodes         = 100_000
	DefaultMaxAccessTokens  = 100_000
	DefaultMaxRefreshTokens = 100_000
	DefaultMaxRevokedGrants = 100_000
	// DefaultMaxPushedRequests bounds pushed authorization requests
	// (RFC 9126).
	DefaultMaxPushedRequests = 100_000
	// DefaultClientShare is the percentage of each table of codes, access
	// tokens, refresh tokens and pushed requests that one client may hold.
	DefaultClientShare = 10
)

// MemoryOptions configures [NewMemory]. Every zero field takes its default.
type MemoryOptions struct {
	// MaxClients bounds registered clients (default DefaultMaxClients).
	// SaveClient of a new client fails with ErrFull beyond it.
	MaxClients int
	// MaxCodes, MaxAccessTokens and MaxRefreshTokens bound each kind of
	// record (defaults DefaultMaxCodes, DefaultMaxAccessTokens,
	// DefaultMaxRefreshTokens). When one is full, saving reclaims expired
	// records and otherwise fails with ErrFull: a live record is never
	// dropped to make room, so a client minting many tokens cannot
	// invalidate the others'.
	MaxCodes         int
	MaxAccessTokens  int
	MaxRefreshTokens int
	// MaxPushedRequests bounds pushed authorization requests (default
	// DefaultMaxPushedRequests), as MaxCodes bounds codes: a full table
	// reclaims expired requests and otherwise refuses with ErrFull. A
	// pushed request comes from an authenticated client (RFC 9126 §2.1),
	// so it counts towards that client's share like its codes.
	MaxPushedRequests int
	// ClientShare is the percentage (1 to 100) of each of those tables
	// that the records of one client may take (default DefaultClientShare,
	// 10%): beyond it, saving a record of that client fails with ErrFull
	// while the other clients keep their room. All users of a public
	// client share its part; size the tables for them. A record counts
	// until it is removed or up to a minute after it expires.
	ClientShare int
	// MaxRevokedGrants bounds remembered grant revocations (default
	// DefaultMaxRevokedGrants). A live revocation is never forgotten to make
	// room: RevokeGrant fails with ErrFull instead. Like the other tables it
	// is the kit's sharded bounded table, so a large one may refuse when
	// about 99% full.
	MaxRevokedGrants int
	// MaxReplayEntries is the capacity of the proof replay cache (default
	// dpop.DefaultReplayCacheCapacity). When full it refuses new proofs.
	MaxReplayEntries int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Memory is the default [Store]: everything in process memory, bounded,
// safe for concurrent use, usable with zero configuration. It protects one
// process only; several instances behind one address need a shared store.
type Memory struct {
	now     func() time.Time
	closed  atomic.Bool
	replay  *dpop.MemoryReplayCache
	codes   *table[AuthorizationCode]
	access  *table[AccessToken]
	refresh *table[RefreshToken]
	pushed  *table[PushedRequest]

	clientsMu  sync.RWMutex
	clients    map[string]*Client
	maxClients int

	// grants holds the revoked grants, keyed by the hash of the grant id,
	// in the kit's one bounded table: a live revocation is never evicted.
	grants bounded.Table[TokenHash, revocation]
}

// revocation is a revoked grant's entry: revoked until, in Unix
// nanoseconds.
type revocation int64

// Expiry implements bounded.Value.
func (r revocation) Expiry() int64 { return int64(r) }

var (
	_ Store                 = (*Memory)(nil)
	_ PushedRequestStore    = (*Memory)(nil)
	_ Pinger                = (*Memory)(nil)
	_ dpop.ReplayCacheStats = (*Memory)(nil)
)

// NewMemory returns an empty in-memory store.
func NewMemory(opts MemoryOptions) (*Memory, error) {
	for _, n := range []int{opts.MaxClients, opts.MaxCodes, opts.MaxAccessTokens, opts.MaxRefreshTokens, opts.MaxRevokedGrants, opts.MaxReplayEntries, opts.MaxPushedRequests} {
		if n < 0 {
			return nil, errors.New("store: negative capacity")
		}
	}
	if opts.ClientShare < 0 || opts.ClientShare > 100 {
		return nil, errors.New("store: ClientShare must be a percentage, 1 to 100")
	}
	or := func(n, def int) int {
		if n == 0 {
			return def
		}
		return n
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	replay, err := dpop.NewMemoryReplayCache(dpop.MemoryReplayCacheOptions{Capacity: opts.MaxReplayEntries, Now: opts.Now})
	if err != nil {
		return nil, err
	}
	share := or(opts.ClientShare, DefaultClientShare)
	perClient := func(capacity int) int { return max(capacity*share/100, 1) }
	nCodes, nAccess, nRefresh := or(opts.MaxCodes, DefaultMaxCodes), or(opts.MaxAccessTokens, DefaultMaxAccessTokens), or(opts.MaxRefreshTokens, DefaultMaxRefreshTokens)
	nPushed := or(opts.MaxPushedRequests, DefaultMaxPushedRequests)
	return &Memory{
		now:        opts.Now,
		replay:     replay,
		codes:      newTable(nCodes, perClient(nCodes), func(c *AuthorizationCode) string { return c.ClientID }),
		access:     newTable(nAccess, perClient(nAccess), func(t *AccessToken) string { return t.ClientID }),
		refresh:    newTable(nRefresh, perClient(nRefresh), func(t *RefreshToken) string { return t.ClientID }),
		pushed:     newTable(nPushed, perClient(nPushed), func(r *PushedRequest) string { return r.ClientID }),
		clients:    map[string]*Client{},
		maxClients: or(opts.MaxClients, DefaultMaxClients),
		grants:     bounded.New[TokenHash, revocation](or(opts.MaxRevokedGrants, DefaultMaxRevokedGrants), nil),
	}, nil
}

// Close releases the store. The memory store runs no background work; after
// Close every method fails with ErrClosed.
func (m *Memory) Close() error {
	m.closed.Store(true)
	return nil
}

// begin checks the context and the store, and returns the time now.
func (m *Memory) begin(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if m.closed.Load() {
		return 0, ErrClosed
	}
	return m.now().UnixNano(), nil
}

// GetClient implements [ClientStore].
func (m *Memory) GetClient(ctx context.Context, id string) (*Client, error) {
	if _, err := m.begin(ctx); err != nil {
		return nil, err
	}
	m.clientsMu.RLock()
	c, ok := m.clients[id]
	m.clientsMu.RUnlock()
	if !ok {
		return nil, ErrNotFound
	}
	return c.Clone(), nil
}

// SaveClient implements [ClientStore]. It refuses a client that
// [Client.Validate] refuses, and a new client beyond MaxClients (ErrFull).
func (m *Memory) SaveClient(ctx context.Context, c *Client) error {
	if _, err := m.begin(ctx); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	m.clientsMu.Lock()
	defer m.clientsMu.Unlock()
	if _, ok := m.clients[c.ID]; !ok && len(m.clients) >= m.maxClients {
		return ErrFull
	}
	m.clients[c.ID] = c.Clone()
	return nil
}

// SaveCode implements [CodeStore].
func (m *Memory) SaveCode(ctx context.Context, h TokenHash, code *AuthorizationCode) error {
	now, err := m.begin(ctx)
	if err != nil {
		return err
	}
	return m.codes.put(h, cloneCode(*code), code.ExpiresAt.UnixNano(), now)
}

// GetCode implements [CodeStore].
func (m *Memory) GetCode(ctx context.Context, h TokenHash) (*AuthorizationCode, error) {
	now, err := m.begin(ctx)
	if err != nil {
		return nil, err
	}
	v, st := m.codes.get(h, now)
	return result(cloneCode(v), st)
}

// ConsumeCode implements [CodeStore].
func (m *Memory) ConsumeCode(ctx context.Context, h TokenHash) (*AuthorizationCode, error) {
	now, err := m.begin(ctx)
	if err != nil {
		return nil, err
	}
	v, st := m.codes.consume(h, now)
	return result(cloneCode(v), st)
}

// SaveAccessToken implements [AccessTokenStore].
func (m *Memory) SaveAccessToken(ctx context.Context, h TokenHash, t *AccessToken) error {
	now, err := m.begin(ctx)
	if err != nil {
		return err
	}
	return m.access.put(h, cloneToken(*t), t.ExpiresAt.UnixNano(), now)
}

// GetAccessToken implements [AccessTokenStore].
func (m *Memory) GetAccessToken(ctx context.Context, h TokenHash) (*AccessToken, error) {
	now, err := m.begin(ctx)
	if err != nil {
		return nil, err
	}
	v, st := m.access.get(h, now)
	if st == live && m.grantRevoked(v.GrantID, now) {
		return nil, ErrRevoked
	}
	return result(cloneToken(v), st)
}

// RevokeAccessToken implements [AccessTokenStore].
func (m *Memory) RevokeAccessToken(ctx context.Context, h TokenHash) error {
	if _, err := m.begin(ctx); err != nil {
		return err
	}
	m.access.remove(h)
	return nil
}

// SaveRefreshToken implements [RefreshTokenStore].
func (m *Memory) SaveRefreshToken(ctx context.Context, h TokenHash, t *RefreshToken) error {
	now, err := m.begin(ctx)
	if err != nil {
		return err
	}
	return m.refresh.put(h, cloneRefresh(*t), t.ExpiresAt.UnixNano(), now)
}

// GetRefreshToken implements [RefreshTokenStore].
func (m *Memory) GetRefreshToken(ctx context.Context, h TokenHash) (*RefreshToken, error) {
	now, err := m.begin(ctx)
	if err != nil {
		return nil, err
	}
	v, st := m.refresh.get(h, now)
	if st == live && m.grantRevoked(v.GrantID, now) {
		return nil, ErrRevoked
	}
	return result(cloneRefresh(v), st)
}

// RotateRefreshToken implements [RefreshTokenStore].
func (m *Memory) RotateRefreshToken(ctx context.Context, old, h TokenHash, next *RefreshToken) (*RefreshToken, error) {
	now, err := m.begin(ctx)
	if err != nil {
		return nil, err
	}
	if old == h {
		return nil, errors.New("store: a refresh token cannot be rotated into itself")
	}
	v, st, err := m.refresh.rotate(old, h, cloneRefresh(*next), next.ExpiresAt.UnixNano(), now, ConsumedRefreshTokensPerGrant, func(t RefreshToken) error {
		if m.grantRevoked(t.GrantID, now) {
			return ErrRevoked
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return result(cloneRefresh(v), st)
}

// RevokeRefreshToken implements [RefreshTokenStore].
func (m *Memory) RevokeRefreshToken(ctx context.Context, h TokenHash) error {
	if _, err := m.begin(ctx); err != nil {
		return err
	}
	m.refresh.remove(h)
	return nil
}

// SavePushedRequest implements [PushedRequestStore]. The request counts
// towards its client's share of the table (ClientShare), like a code.
func (m *Memory) SavePushedRequest(ctx context.Context, h TokenHash, r *PushedRequest) error {
	now, err := m.begin(ctx)
	if err != nil {
		return err
	}
	return m.pushed.put(h, *r, r.ExpiresAt.UnixNano(), now)
}

// GetPushedRequest implements [PushedRequestStore].
func (m *Memory) GetPushedRequest(ctx context.Context, h TokenHash) (*PushedRequest, error) {
	now, err := m.begin(ctx)
	if err != nil {
		return nil, err
	}
	v, st := m.pushed.get(h, now)
	return result(v, st)
}

// ConsumePushedRequest implements [PushedRequestStore]: the lookup and the
// marking happen under the lock of the request's shard, as for codes.
func (m *Memory) ConsumePushedRequest(ctx context.Context, h TokenHash) (*PushedRequest, error) {
	now, err := m.begin(ctx)
	if err != nil {
		return nil, err
	}
	v, st := m.pushed.consume(h, now)
	return result(v, st)
}

// RevokeGrant implements [GrantStore].
func (m *Memory) RevokeGrant(ctx context.Context, grantID string, until time.Time) error {
	now, err := m.begin(ctx)
	if err != nil {
		return err
	}
	k := HashToken(grantID)
	sh := m.grants.Shard(k)
	sh.Lock()
	defer sh.Unlock()
	u := revocation(until.UnixNano())
	if prev, ok := sh.Peek(k); ok {
		// Already revoked: the later end wins, and the entry takes no more
		// room.
		sh.Remove(k)
		sh.Add(k, max(prev, u))
		return nil
	}
	if !sh.MakeRoom(now) {
		return ErrFull // forgetting a live revocation would bring tokens back
	}
	sh.Add(k, u)
	return nil
}

func (m *Memory) grantRevoked(grantID string, now int64) bool {
	if grantID == "" {
		return false
	}
	k := HashToken(grantID)
	sh := m.grants.Shard(k)
	sh.Lock()
	defer sh.Unlock()
	_, st := sh.Get(k, now)
	return st == bounded.Live
}

// Insert implements [dpop.ReplayCache] with a bounded in-memory cache that
// refuses new entries when full.
func (m *Memory) Insert(ctx context.Context, key dpop.ReplayKey, ttl time.Duration) (bool, error) {
	if _, err := m.begin(ctx); err != nil {
		return false, err
	}
	return m.replay.Insert(ctx, key, ttl)
}

// Capacity returns the capacity of the proof replay cache, from which the
// verifiers size each party's share (dpop.Quota).
func (m *Memory) Capacity() int { return m.replay.Capacity() }

// ReplayEntries implements [dpop.ReplayCacheStats]: the entries the proof
// replay cache holds, expired ones not yet reclaimed included.
func (m *Memory) ReplayEntries() int { return m.replay.Len() }

// Ping implements [Pinger]: the memory store is ready unless closed
// (ErrClosed) or ctx has ended.
func (m *Memory) Ping(ctx context.Context) error {
	_, err := m.begin(ctx)
	return err
}

// result turns a table lookup into the record and error the interfaces
// promise. v is the caller's copy (see cloneCode).
func result[V any](v V, st state) (*V, error) {
	switch st {
	case live:
		return &v, nil
	case consumed:
		return &v, ErrConsumed
	case expired:
		return nil, ErrExpired
	}
	return nil, ErrNotFound
}

// The tables keep records by value, which copies their strings and times but
// not the memory of their slices: cloneCode, cloneToken and cloneRefresh
// copy that too. A record is cloned when it is saved and when it is read, so
// that neither the caller that saved it nor one that read it can change the
// stored record through a slice it holds. nil stays nil. A PushedRequest
// holds no slice: the value copy is the whole copy.
func cloneCode(c AuthorizationCode) AuthorizationCode {
	c.Resources = slices.Clone(c.Resources)
	return c
}

func cloneToken(t AccessToken) AccessToken {
	t.Audience = slices.Clone(t.Audience)
	t.Claims = slices.Clone(t.Claims)
	return t
}

func cloneRefresh(t RefreshToken) RefreshToken { return RefreshToken(cloneToken(AccessToken(t))) }
