// Package customstore is a template for writing a store of one's own: a
// complete store.Store over plain maps and one mutex, and a test that runs
// the kit's conformance suite (adaptertest.Run) against it.
//
// Copy it and replace the maps with your database. What must survive the
// move is written next to each method: atomic consumption of codes and of
// pushed authorization requests and rotation of refresh tokens, a bound on
// the rotated refresh tokens kept per grant, expiry on every lookup, grant
// revocation that also covers tokens stored later, copies in and out, and a
// context checked before anything is done. The suite checks each of these.
// Pushed requests (store.PushedRequestStore) are optional: a store without
// them still serves the kit, with pushed authorization requests off.
//
// Being in memory, this store protects one process only, like
// store.NewMemory; a store worth writing is usually one that several
// instances share.
package customstore

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// DefaultLimit is how many records of each kind a Store holds by default.
const DefaultLimit = 100_000

// sweepInterval is the least time between two sweeps of expired records.
const sweepInterval = time.Second

// Options configures New.
type Options struct {
	// Limit bounds each kind of record: clients, codes, access tokens,
	// refresh tokens, pushed requests, revoked grants and replay entries. When a kind is
	// full even after dropping expired records, saving fails with
	// store.ErrFull (Insert with dpop.ErrReplayCacheFull): the request is
	// refused, nothing live is forgotten. Default DefaultLimit.
	Limit int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Store is a store.Store in process memory. It is safe for concurrent use.
type Store struct {
	now   func() time.Time
	limit int

	// mu guards everything below. One lock makes every method atomic,
	// which is what ConsumeCode, RotateRefreshToken and Insert need; a
	// database gets the same from a transaction, a conditional update
	// (UPDATE ... WHERE consumed = false) or an atomic SET NX.
	mu        sync.Mutex
	closed    bool
	lastSweep time.Time
	clients   map[string]*store.Client
	codes     map[store.TokenHash]*entry[store.AuthorizationCode]
	access    map[store.TokenHash]*entry[store.AccessToken]
	refresh   map[store.TokenHash]*entry[store.RefreshToken]
	pushed    map[store.TokenHash]*entry[store.PushedRequest]
	grants    map[string]time.Time         // revoked grant id -> revoked until
	replay    map[dpop.ReplayKey]time.Time // proof -> remembered until
	// rotated lists, per grant id, the rotated refresh tokens kept for
	// reuse detection, oldest first: at most
	// store.ConsumedRefreshTokensPerGrant. A database keeps the same list
	// (a list per grant in Redis), or finds them by a query (consumed
	// rows of the grant, most recent first).
	rotated map[string][]store.TokenHash
}

// entry is a stored record. consumed marks a redeemed code or a rotated
// refresh token: it is kept until it expires, so that a second use is told
// apart from an unknown value and its grant can be revoked.
type entry[T any] struct {
	rec      T
	expires  time.Time
	consumed bool
}

var (
	_ store.Store = (*Store)(nil)
	// The handlers turn pushed authorization requests (RFC 9126) on when
	// the store implements this narrow interface too.
	_ store.PushedRequestStore = (*Store)(nil)
)

// New returns an empty store.
func New(opts Options) *Store {
	if opts.Limit <= 0 {
		opts.Limit = DefaultLimit
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{
		now:     opts.Now,
		limit:   opts.Limit,
		clients: map[string]*store.Client{},
		codes:   map[store.TokenHash]*entry[store.AuthorizationCode]{},
		access:  map[store.TokenHash]*entry[store.AccessToken]{},
		refresh: map[store.TokenHash]*entry[store.RefreshToken]{},
		pushed:  map[store.TokenHash]*entry[store.PushedRequest]{},
		grants:  map[string]time.Time{},
		replay:  map[dpop.ReplayKey]time.Time{},
		rotated: map[string][]store.TokenHash{},
	}
}

// Close releases the store; every later call fails with store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// lock checks the context first (a cancelled call must do nothing), takes
// the lock and returns the time. The caller unlocks when err is nil.
func (s *Store) lock(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return time.Time{}, store.ErrClosed
	}
	return s.now(), nil
}

// GetClient implements store.ClientStore. The caller gets a copy.
func (s *Store) GetClient(ctx context.Context, id string) (*store.Client, error) {
	if _, err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return c.Clone(), nil
}

// SaveClient implements store.ClientStore. It refuses a client that
// store.Client.Validate refuses: every store makes that one check, so that
// a client the endpoints could not serve correctly is refused when it is
// registered. The store keeps a copy, so the caller may go on changing its
// own.
func (s *Store) SaveClient(ctx context.Context, c *store.Client) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if _, err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.clients[c.ID]; !ok && len(s.clients) >= s.limit {
		return store.ErrFull
	}
	s.clients[c.ID] = c.Clone()
	return nil
}

// SaveCode implements store.CodeStore.
func (s *Store) SaveCode(ctx context.Context, h store.TokenHash, code *store.AuthorizationCode) error {
	if code == nil {
		return errors.New("customstore: nil code")
	}
	return save(ctx, s, s.codes, h, cloneCode(*code), code.ExpiresAt)
}

// GetCode implements store.CodeStore: ConsumeCode without the consuming,
// with the same answers (store.ErrConsumed and the record once redeemed).
// The token endpoint checks a code this way before it redeems it, so a
// lookup must change nothing.
func (s *Store) GetCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	return s.code(ctx, h, false)
}

// ConsumeCode implements store.CodeStore: the first call gets the record,
// every later one the record and store.ErrConsumed, until the code expires.
func (s *Store) ConsumeCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	return s.code(ctx, h, true)
}

// code is GetCode, and ConsumeCode when consume is set: the lookup and the
// marking happen under one lock, so of concurrent calls exactly one redeems
// the code.
func (s *Store) code(ctx context.Context, h store.TokenHash, consume bool) (*store.AuthorizationCode, error) {
	now, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	e, err := live(s.codes, h, now)
	if err != nil {
		return nil, err
	}
	rec := cloneCode(e.rec) // the caller's own copy
	if e.consumed {
		return &rec, store.ErrConsumed
	}
	if consume {
		e.consumed = true
	}
	return &rec, nil
}

// SavePushedRequest implements store.PushedRequestStore: a pushed
// authorization request (RFC 9126 §2) until r.ExpiresAt. Its record holds
// only strings and a time, so the struct copy is the whole copy.
func (s *Store) SavePushedRequest(ctx context.Context, h store.TokenHash, r *store.PushedRequest) error {
	if r == nil {
		return errors.New("customstore: nil pushed request")
	}
	return save(ctx, s, s.pushed, h, *r, r.ExpiresAt)
}

// GetPushedRequest implements store.PushedRequestStore: the authorization
// endpoint reads the request each time the user loads the page, so a lookup
// changes nothing. A consumed request comes back with store.ErrConsumed.
func (s *Store) GetPushedRequest(ctx context.Context, h store.TokenHash) (*store.PushedRequest, error) {
	return s.pushedRequest(ctx, h, false)
}

// ConsumePushedRequest implements store.PushedRequestStore: like
// ConsumeCode, the first call gets the record, every later one the record
// and store.ErrConsumed until the request expires.
func (s *Store) ConsumePushedRequest(ctx context.Context, h store.TokenHash) (*store.PushedRequest, error) {
	return s.pushedRequest(ctx, h, true)
}

// pushedRequest is GetPushedRequest, and ConsumePushedRequest when consume
// is set, under one lock as code is.
func (s *Store) pushedRequest(ctx context.Context, h store.TokenHash, consume bool) (*store.PushedRequest, error) {
	now, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	e, err := live(s.pushed, h, now)
	if err != nil {
		return nil, err
	}
	rec := e.rec
	if e.consumed {
		return &rec, store.ErrConsumed
	}
	if consume {
		e.consumed = true
	}
	return &rec, nil
}

// SaveAccessToken implements store.AccessTokenStore.
func (s *Store) SaveAccessToken(ctx context.Context, h store.TokenHash, t *store.AccessToken) error {
	if t == nil {
		return errors.New("customstore: nil access token")
	}
	return save(ctx, s, s.access, h, cloneAccess(*t), t.ExpiresAt)
}

// GetAccessToken implements store.AccessTokenStore. A token of a revoked
// grant is refused even if it was saved after the revocation.
func (s *Store) GetAccessToken(ctx context.Context, h store.TokenHash) (*store.AccessToken, error) {
	now, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	e, err := live(s.access, h, now)
	if err != nil {
		return nil, err
	}
	if s.revokedLocked(e.rec.GrantID, now) {
		return nil, store.ErrRevoked
	}
	rec := cloneAccess(e.rec)
	return &rec, nil
}

// RevokeAccessToken implements store.AccessTokenStore.
func (s *Store) RevokeAccessToken(ctx context.Context, h store.TokenHash) error {
	if _, err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.access, h)
	return nil
}

// SaveRefreshToken implements store.RefreshTokenStore.
func (s *Store) SaveRefreshToken(ctx context.Context, h store.TokenHash, t *store.RefreshToken) error {
	if t == nil {
		return errors.New("customstore: nil refresh token")
	}
	return save(ctx, s, s.refresh, h, cloneRefresh(*t), t.ExpiresAt)
}

// GetRefreshToken implements store.RefreshTokenStore.
func (s *Store) GetRefreshToken(ctx context.Context, h store.TokenHash) (*store.RefreshToken, error) {
	now, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	_, rec, err := s.refreshLocked(h, now)
	return rec, err
}

// refreshLocked looks up the refresh token h with the answers of
// GetRefreshToken: a copy of the record, with store.ErrConsumed once the
// token was rotated (returned with the record: the caller revokes the
// grant), or store.ErrRevoked when its grant was revoked. The entry comes
// back only when the token may be used, for RotateRefreshToken to consume.
func (s *Store) refreshLocked(h store.TokenHash, now time.Time) (*entry[store.RefreshToken], *store.RefreshToken, error) {
	e, err := live(s.refresh, h, now)
	if err != nil {
		return nil, nil, err
	}
	rec := cloneRefresh(e.rec)
	switch {
	case e.consumed:
		return nil, &rec, store.ErrConsumed
	case s.revokedLocked(rec.GrantID, now):
		return nil, nil, store.ErrRevoked
	}
	return e, &rec, nil
}

// RotateRefreshToken implements store.RefreshTokenStore: consuming old and
// storing next happen under one lock, so of concurrent rotations of one
// token exactly one stores its successor. The same step forgets the grant's
// rotated tokens beyond the store.ConsumedRefreshTokensPerGrant most recent
// (see keepRotatedLocked), so that a grant rotated forever holds a bounded
// number of records.
func (s *Store) RotateRefreshToken(ctx context.Context, old, h store.TokenHash, next *store.RefreshToken) (*store.RefreshToken, error) {
	if next == nil {
		return nil, errors.New("customstore: nil refresh token")
	}
	if old == h {
		return nil, errors.New("customstore: a refresh token cannot be rotated into itself")
	}
	now, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	e, rec, err := s.refreshLocked(old, now)
	if err != nil {
		return rec, err // with store.ErrConsumed, the record: the caller revokes the grant
	}
	if err := saveLocked(s, s.refresh, h, cloneRefresh(*next), next.ExpiresAt, now); err != nil {
		return nil, err
	}
	e.consumed = true
	s.keepRotatedLocked(rec.GrantID, old, now)
	return rec, nil
}

// keepRotatedLocked records that old, of grant, was just rotated, and
// deletes the grant's rotated tokens beyond the
// store.ConsumedRefreshTokensPerGrant most recent: they become unknown
// (store.ErrNotFound). Only a record that is still a consumed token of the
// grant is deleted, never a live one (a hash saved again since). A database
// does this in the rotation's own transaction or script.
func (s *Store) keepRotatedLocked(grant string, old store.TokenHash, now time.Time) {
	if _, ok := s.rotated[grant]; !ok {
		// A new list. When there are Limit lists, the sweep drops those
		// whose tokens are all gone: each list left names a stored refresh
		// token, so there are about as many as refresh tokens at most.
		s.roomLocked(func() int { return len(s.rotated) }, true, now)
	}
	// old was consumed just now: it moves to the end, as the most recent.
	list := slices.DeleteFunc(s.rotatedLocked(grant), func(h store.TokenHash) bool { return h == old })
	list = append(list, old)
	for len(list) > store.ConsumedRefreshTokensPerGrant {
		delete(s.refresh, list[0]) // a consumed token of grant: rotatedLocked checked
		list = list[1:]
	}
	s.rotated[grant] = list
}

// rotatedLocked returns the list of grant's rotated tokens without those
// that are gone (expired, revoked) or are no longer a consumed token of the
// grant, in a new slice.
func (s *Store) rotatedLocked(grant string) []store.TokenHash {
	var list []store.TokenHash
	for _, h := range s.rotated[grant] {
		if e, ok := s.refresh[h]; ok && e.consumed && e.rec.GrantID == grant {
			list = append(list, h)
		}
	}
	return list
}

// RevokeRefreshToken implements store.RefreshTokenStore.
func (s *Store) RevokeRefreshToken(ctx context.Context, h store.TokenHash) error {
	if _, err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.refresh, h)
	return nil
}

// RevokeGrant implements store.GrantStore. The revocation is a record of its
// own, checked by every token lookup, rather than a sweep over the tokens:
// that also covers tokens stored after it by requests already in flight.
func (s *Store) RevokeGrant(ctx context.Context, grantID string, until time.Time) error {
	now, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if prev, ok := s.grants[grantID]; ok {
		if until.After(prev) {
			s.grants[grantID] = until
		}
		return nil
	}
	if !s.roomLocked(func() int { return len(s.grants) }, true, now) {
		// Forgetting a live revocation would bring tokens back.
		return store.ErrFull
	}
	s.grants[grantID] = until
	return nil
}

func (s *Store) revokedLocked(grantID string, now time.Time) bool {
	until, ok := s.grants[grantID]
	return ok && grantID != "" && until.After(now)
}

// Insert implements dpop.ReplayCache: it reports whether the proof is new
// and remembers it for ttl. A full cache refuses the proof rather than
// forget one that is still fresh.
func (s *Store) Insert(ctx context.Context, key dpop.ReplayKey, ttl time.Duration) (bool, error) {
	now, err := s.lock(ctx)
	if err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	if until, ok := s.replay[key]; ok && until.After(now) {
		return false, nil
	}
	_, ok := s.replay[key] // present but expired: reused in place
	if !s.roomLocked(func() int { return len(s.replay) }, !ok, now) {
		return false, dpop.ErrReplayCacheFull
	}
	s.replay[key] = now.Add(ttl)
	return true, nil
}

// cloneCode, cloneAccess and cloneRefresh copy a record with its slices
// (resources, audience, claims): copying the struct alone would share them,
// and a caller changing the slices it saved or read would change the stored
// record. The store keeps a copy of what it is given and hands out copies of
// what it keeps. A database gets this for free: it stores and returns bytes.
func cloneCode(c store.AuthorizationCode) store.AuthorizationCode {
	c.Resources = slices.Clone(c.Resources)
	return c
}

func cloneAccess(t store.AccessToken) store.AccessToken {
	t.Audience = slices.Clone(t.Audience)
	t.Claims = slices.Clone(t.Claims)
	return t
}

func cloneRefresh(t store.RefreshToken) store.RefreshToken {
	return store.RefreshToken(cloneAccess(store.AccessToken(t)))
}

// live returns the unexpired entry under h. An expired one is deleted and
// reported as store.ErrExpired (which wraps store.ErrNotFound): no lookup
// ever returns an expired record.
func live[T any](m map[store.TokenHash]*entry[T], h store.TokenHash, now time.Time) (*entry[T], error) {
	e, ok := m[h]
	if !ok {
		return nil, store.ErrNotFound
	}
	if !e.expires.After(now) {
		delete(m, h)
		return nil, store.ErrExpired
	}
	return e, nil
}

// save stores a copy of rec under h, in m (one of the store's maps), until
// expires: the body of SaveCode, SaveAccessToken and SaveRefreshToken. The
// map is passed in, not read under the lock, because New made it and no
// method ever replaces it; its contents are only touched under the lock.
func save[T any](ctx context.Context, s *Store, m map[store.TokenHash]*entry[T], h store.TokenHash, rec T, expires time.Time) error {
	now, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	return saveLocked(s, m, h, rec, expires, now)
}

// saveLocked stores a copy of rec under h until expires, replacing what was
// there, or fails with store.ErrFull when m is full: replacing a record
// needs no room, a new one does (see roomLocked).
func saveLocked[T any](s *Store, m map[store.TokenHash]*entry[T], h store.TokenHash, rec T, expires, now time.Time) error {
	if _, ok := m[h]; !s.roomLocked(func() int { return len(m) }, !ok, now) {
		return store.ErrFull
	}
	m[h] = &entry[T]{rec: rec, expires: expires}
	return nil
}

// roomLocked reports whether a kind of record now holding n (of which the
// one to be saved is not yet one: isNew) may take one more. When it is full
// the expired records of every kind are dropped, at most once per
// sweepInterval so that a full store does not rescan on every call. A full
// store refuses: the request fails, nothing live is forgotten.
func (s *Store) roomLocked(n func() int, isNew bool, now time.Time) bool {
	if !isNew || n() < s.limit {
		return true
	}
	if now.Sub(s.lastSweep) >= sweepInterval {
		s.sweepLocked(now)
	}
	return n() < s.limit
}

// sweepLocked drops every expired record.
func (s *Store) sweepLocked(now time.Time) {
	s.lastSweep = now
	sweep(s.codes, now)
	sweep(s.access, now)
	sweep(s.refresh, now)
	sweep(s.pushed, now)
	for grant := range s.rotated {
		if list := s.rotatedLocked(grant); len(list) > 0 {
			s.rotated[grant] = list
		} else {
			delete(s.rotated, grant)
		}
	}
	for id, until := range s.grants {
		if !until.After(now) {
			delete(s.grants, id)
		}
	}
	for k, until := range s.replay {
		if !until.After(now) {
			delete(s.replay, k)
		}
	}
}

func sweep[T any](m map[store.TokenHash]*entry[T], now time.Time) {
	for h, e := range m {
		if !e.expires.After(now) {
			delete(m, h)
		}
	}
}
