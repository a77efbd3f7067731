package adaptertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// Deliberately broken stores: each wraps the correct in-memory store and
// breaks one promise, the way a real adapter might get it wrong. The
// self-test checks that the suite reports each one.

type memory = store.Memory

// gap widens the window between a check and an update, as a network round
// trip would.
func gap() { time.Sleep(2 * time.Millisecond) }

// The non-atomic stores take their window between check and update as a
// parameter: gap, or runtime.Gosched, a single scheduling point, which one
// round of racing may well miss and only many rounds catch for certain.

// nonAtomicConsume reads a code, then marks it consumed in a second step.
type nonAtomicConsume struct {
	*memory
	window func()
	mu     sync.Mutex
	codes  map[store.TokenHash]*codeState
}

type codeState struct {
	rec  store.AuthorizationCode
	used bool
}

func (s *nonAtomicConsume) SaveCode(ctx context.Context, h store.TokenHash, c *store.AuthorizationCode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[h] = &codeState{rec: *c}
	return nil
}

func (s *nonAtomicConsume) ConsumeCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	c, ok := s.codes[h]
	var used bool
	var rec store.AuthorizationCode
	if ok {
		used, rec = c.used, c.rec
	}
	s.mu.Unlock()
	switch {
	case !ok:
		return nil, store.ErrNotFound
	case !rec.ExpiresAt.After(time.Now()):
		return nil, store.ErrExpired
	case used:
		return &rec, store.ErrConsumed
	}
	s.window()
	s.mu.Lock()
	c.used = true
	s.mu.Unlock()
	return &rec, nil
}

func (s *nonAtomicConsume) GetCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[h]
	switch {
	case !ok:
		return nil, store.ErrNotFound
	case !c.rec.ExpiresAt.After(time.Now()):
		return nil, store.ErrExpired
	}
	rec := c.rec
	if c.used {
		return &rec, store.ErrConsumed
	}
	return &rec, nil
}

// returnsExpired keeps its own copy of access tokens and never checks expiry.
type returnsExpired struct {
	*memory
	mu     sync.Mutex
	tokens map[store.TokenHash]store.AccessToken
}

func (s *returnsExpired) SaveAccessToken(ctx context.Context, h store.TokenHash, t *store.AccessToken) error {
	s.mu.Lock()
	s.tokens[h] = *t
	s.mu.Unlock()
	return s.memory.SaveAccessToken(ctx, h, t)
}

func (s *returnsExpired) GetAccessToken(ctx context.Context, h store.TokenHash) (*store.AccessToken, error) {
	t, err := s.memory.GetAccessToken(ctx, h)
	if err == store.ErrExpired || (err == store.ErrNotFound && ctx.Err() == nil) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if old, ok := s.tokens[h]; ok {
			return &old, nil
		}
	}
	return t, err
}

func (s *returnsExpired) RevokeAccessToken(ctx context.Context, h store.TokenHash) error {
	s.mu.Lock()
	delete(s.tokens, h)
	s.mu.Unlock()
	return s.memory.RevokeAccessToken(ctx, h)
}

// losesField does not store a code's dpop_jkt binding.
type losesField struct{ *memory }

func (s losesField) SaveCode(ctx context.Context, h store.TokenHash, c *store.AuthorizationCode) error {
	d := *c
	d.DPoPJKT = ""
	return s.memory.SaveCode(ctx, h, &d)
}

// losesAudience does not store an access token's audience.
type losesAudience struct{ *memory }

func (s losesAudience) SaveAccessToken(ctx context.Context, h store.TokenHash, t *store.AccessToken) error {
	d := *t
	d.Audience = nil
	return s.memory.SaveAccessToken(ctx, h, &d)
}

// reencodesClaims keeps a refresh token's claims as parsed JSON, as a jsonb
// column or a decode into a map does, and gives back their encoding: the
// same claims, not the same bytes.
type reencodesClaims struct{ *memory }

func (s reencodesClaims) SaveRefreshToken(ctx context.Context, h store.TokenHash, t *store.RefreshToken) error {
	d := *t
	if d.Claims != nil {
		var v map[string]any
		if err := json.Unmarshal(d.Claims, &v); err != nil {
			return err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		d.Claims = b
	}
	return s.memory.SaveRefreshToken(ctx, h, &d)
}

// rotationKeepsAudience stores the token a rotation makes with the old
// token's audience, as a store that copies it over from the row it
// consumes would.
type rotationKeepsAudience struct{ *memory }

func (s rotationKeepsAudience) RotateRefreshToken(ctx context.Context, old, h store.TokenHash, next *store.RefreshToken) (*store.RefreshToken, error) {
	d := *next
	if prev, err := s.memory.GetRefreshToken(ctx, old); err == nil {
		d.Audience = prev.Audience
	}
	return s.memory.RotateRefreshToken(ctx, old, h, &d)
}

// sharesTokens keeps access tokens in a map of its own, copied by value, as
// a store whose records once held only strings and times might: their
// audience and claims are the caller's slices.
type sharesTokens struct {
	*memory
	mu     sync.Mutex
	tokens map[store.TokenHash]*store.AccessToken
}

func (s *sharesTokens) SaveAccessToken(ctx context.Context, h store.TokenHash, t *store.AccessToken) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := *t
	s.tokens[h] = &rec
	return nil
}

func (s *sharesTokens) GetAccessToken(ctx context.Context, h store.TokenHash) (*store.AccessToken, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[h]
	if !ok || !t.ExpiresAt.After(time.Now()) {
		return nil, store.ErrNotFound
	}
	rec := *t
	return &rec, nil
}

func (s *sharesTokens) RevokeAccessToken(ctx context.Context, h store.TokenHash) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, h)
	return nil
}

// nonAtomicReplay checks for a key, then records it in a second step.
type nonAtomicReplay struct {
	*memory
	window func()
	mu     sync.Mutex
	seen   map[dpop.ReplayKey]bool
}

func (s *nonAtomicReplay) Insert(ctx context.Context, k dpop.ReplayKey, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	seen := s.seen[k]
	s.mu.Unlock()
	if seen {
		return false, nil
	}
	s.window()
	s.mu.Lock()
	s.seen[k] = true
	s.mu.Unlock()
	return true, nil
}

// acceptsReplays reports every proof as new.
type acceptsReplays struct{ *memory }

func (s acceptsReplays) Insert(ctx context.Context, k dpop.ReplayKey, ttl time.Duration) (bool, error) {
	s.memory.Insert(ctx, k, ttl)
	return true, ctx.Err()
}

// nonAtomicRotate looks the old token up, then saves the new one and
// revokes the old one in separate steps.
type nonAtomicRotate struct {
	*memory
	window func()
}

func (s nonAtomicRotate) RotateRefreshToken(ctx context.Context, old, h store.TokenHash, next *store.RefreshToken) (*store.RefreshToken, error) {
	prev, err := s.memory.GetRefreshToken(ctx, old)
	if err != nil {
		return prev, err
	}
	s.window()
	if err := s.memory.SaveRefreshToken(ctx, h, next); err != nil {
		return nil, err
	}
	_, err = s.memory.RotateRefreshToken(ctx, old, store.HashToken(h.String()), next)
	if err == store.ErrConsumed {
		err = nil // the race is lost silently
	}
	return prev, err
}

// ignoresContext never looks at the caller's context.
type ignoresContext struct{ *memory }

func (s ignoresContext) ConsumeCode(_ context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	return s.memory.ConsumeCode(context.Background(), h)
}

func (s ignoresContext) Insert(_ context.Context, k dpop.ReplayKey, ttl time.Duration) (bool, error) {
	return s.memory.Insert(context.Background(), k, ttl)
}

// ignoresGrantRevocation accepts RevokeGrant and does nothing.
type ignoresGrantRevocation struct{ *memory }

func (ignoresGrantRevocation) RevokeGrant(context.Context, string, time.Time) error { return nil }

// sharesClients hands out the record it keeps, so callers can change it.
type sharesClients struct {
	*memory
	mu      sync.Mutex
	clients map[string]*store.Client
}

func (s *sharesClients) SaveClient(ctx context.Context, c *store.Client) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = c
	return nil
}

func (s *sharesClients) GetClient(ctx context.Context, id string) (*store.Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[id]; ok {
		return c, nil
	}
	return nil, store.ErrNotFound
}

// checksOnlyID registers any client with an id, as the stores did before
// Client.Validate: unknown grant types, public clients with
// client_credentials, relative redirect URIs and negative lifetimes pass.
type checksOnlyID struct {
	*memory
	mu      sync.Mutex
	clients map[string]*store.Client
}

func (s *checksOnlyID) SaveClient(ctx context.Context, c *store.Client) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c == nil || c.ID == "" {
		return fmt.Errorf("%w: client without id", store.ErrInvalidClientMetadata)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = c.Clone()
	return nil
}

func (s *checksOnlyID) GetClient(ctx context.Context, id string) (*store.Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[id]; ok {
		return c.Clone(), nil
	}
	return nil, store.ErrNotFound
}

// refusesTooMuch also refuses a valid client: a native app's redirect URI
// with a custom scheme.
type refusesTooMuch struct{ *memory }

func (s refusesTooMuch) SaveClient(ctx context.Context, c *store.Client) error {
	for _, u := range c.RedirectURIs {
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			return fmt.Errorf("%w: scheme", store.ErrInvalidRedirectURI)
		}
	}
	return s.memory.SaveClient(ctx, c)
}

// textKeys turns hashes into C-style strings, so keys that differ after a
// NUL byte collide.
type textKeys struct{ *memory }

func textKey(h store.TokenHash) store.TokenHash {
	s, _, _ := strings.Cut(string(h[:]), "\x00")
	return store.HashToken(s)
}

func (s textKeys) SaveCode(ctx context.Context, h store.TokenHash, c *store.AuthorizationCode) error {
	return s.memory.SaveCode(ctx, textKey(h), c)
}

func (s textKeys) ConsumeCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	return s.memory.ConsumeCode(ctx, textKey(h))
}

// Faults that only several instances show. Each instance of a service is a
// process with a store value of its own; the instances of RunInstances run
// in one process over one store value, so these stores tell them apart by
// the listener that served the request, which net/http puts in the request
// context. Calls made outside a request, as Run makes them, all come from
// one instance, for which the store is correct.

// instanceOf names the instance a call comes from.
func instanceOf(ctx context.Context) string {
	if a, ok := ctx.Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a.String()
	}
	return ""
}

// perInstanceReplay keeps the replay cache in each instance's memory, a
// dpop.MemoryReplayCache that spares the database a write per request,
// and everything else in the shared store: each instance refuses only the
// proofs it saw itself.
type perInstanceReplay struct {
	*memory
	mu     sync.Mutex
	caches map[string]*dpop.MemoryReplayCache
}

func (s *perInstanceReplay) Insert(ctx context.Context, k dpop.ReplayKey, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	c, ok := s.caches[instanceOf(ctx)]
	if !ok {
		var err error
		if c, err = dpop.NewMemoryReplayCache(dpop.MemoryReplayCacheOptions{Capacity: 1 << 12}); err != nil {
			s.mu.Unlock()
			return false, err
		}
		s.caches[instanceOf(ctx)] = c
	}
	s.mu.Unlock()
	return c.Insert(ctx, k, ttl)
}

// perInstanceTokenCache caches access token lookups in each instance's
// memory, sparing the database a read per API call, and drops an entry
// only when that instance revokes the token or its grant: a token revoked
// at one instance stays good at the others until it expires.
type perInstanceTokenCache struct {
	*memory
	mu     sync.Mutex
	caches map[string]map[store.TokenHash]store.AccessToken
}

// cache is the instance's cache; s.mu must be held.
func (s *perInstanceTokenCache) cache(ctx context.Context) map[store.TokenHash]store.AccessToken {
	c, ok := s.caches[instanceOf(ctx)]
	if !ok {
		c = map[store.TokenHash]store.AccessToken{}
		s.caches[instanceOf(ctx)] = c
	}
	return c
}

func (s *perInstanceTokenCache) GetAccessToken(ctx context.Context, h store.TokenHash) (*store.AccessToken, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	t, ok := s.cache(ctx)[h]
	s.mu.Unlock()
	if ok && t.ExpiresAt.After(time.Now()) {
		t = cloneAccess(t) // the caller's own, as the memory store's
		return &t, nil
	}
	rec, err := s.memory.GetAccessToken(ctx, h)
	if err == nil {
		s.mu.Lock()
		s.cache(ctx)[h] = cloneAccess(*rec)
		s.mu.Unlock()
	}
	return rec, err
}

// cloneAccess copies a token with its slices.
func cloneAccess(t store.AccessToken) store.AccessToken {
	t.Audience, t.Claims = slices.Clone(t.Audience), slices.Clone(t.Claims)
	return t
}

func (s *perInstanceTokenCache) RevokeAccessToken(ctx context.Context, h store.TokenHash) error {
	if err := s.memory.RevokeAccessToken(ctx, h); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.cache(ctx), h)
	s.mu.Unlock()
	return nil
}

func (s *perInstanceTokenCache) RevokeGrant(ctx context.Context, grantID string, until time.Time) error {
	if err := s.memory.RevokeGrant(ctx, grantID, until); err != nil {
		return err
	}
	s.mu.Lock()
	maps.DeleteFunc(s.cache(ctx), func(_ store.TokenHash, t store.AccessToken) bool { return t.GrantID == grantID })
	s.mu.Unlock()
	return nil
}

// Faults of GetCode.

// consumingGet redeems the code it is asked to look up.
type consumingGet struct{ *memory }

func (s consumingGet) GetCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	return s.memory.ConsumeCode(ctx, h)
}

// hidesConsumedRecord answers ErrConsumed without the record, so that the
// caller cannot revoke the grant of a replayed code.
type hidesConsumedRecord struct{ *memory }

func (s hidesConsumedRecord) GetCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	c, err := s.memory.GetCode(ctx, h)
	if errors.Is(err, store.ErrConsumed) {
		return nil, err
	}
	return c, err
}

// Faults of the bound on consumed refresh tokens. chainStore wraps the
// memory store, which keeps the ConsumedRefreshTokensPerGrant most recent
// consumed tokens of each grant, and keeps more or fewer.

type chainFault int

const (
	keepsAll        chainFault = iota // forgets no consumed token
	keepsTooFew                       // keeps one consumed token fewer per grant
	forgetsLive                       // once the chain is full, forgets the new token too
	boundsPerClient                   // keeps that many per client, not per grant
)

type chainStore struct {
	*memory
	fault    chainFault
	mu       sync.Mutex
	consumed map[string][]store.TokenHash           // per grant (client), oldest first
	kept     map[store.TokenHash]store.RefreshToken // keepsAll: every consumed token
}

func (s *chainStore) RotateRefreshToken(ctx context.Context, old, h store.TokenHash, next *store.RefreshToken) (*store.RefreshToken, error) {
	prev, err := s.memory.RotateRefreshToken(ctx, old, h, next)
	if s.fault == keepsAll && errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrExpired) {
		if rec, ok := s.remembered(old); ok {
			return &rec, store.ErrConsumed
		}
	}
	if err != nil {
		return prev, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	const keep = store.ConsumedRefreshTokensPerGrant
	owner := prev.GrantID
	if s.fault == boundsPerClient {
		owner = prev.ClientID
	}
	list := append(s.consumed[owner], old)
	switch s.fault {
	case keepsAll:
		s.kept[old] = *prev
	case keepsTooFew:
		for len(list) > keep-1 {
			s.memory.RevokeRefreshToken(ctx, list[0])
			list = list[1:]
		}
	case forgetsLive:
		if len(list) > keep {
			s.memory.RevokeRefreshToken(ctx, h)
		}
	case boundsPerClient:
		for len(list) > keep {
			s.memory.RevokeRefreshToken(ctx, list[0])
			list = list[1:]
		}
	}
	s.consumed[owner] = list
	return prev, nil
}

// remembered is a consumed token that keepsAll still answers for.
func (s *chainStore) remembered(h store.TokenHash) (store.RefreshToken, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.kept[h]
	return rec, ok && rec.ExpiresAt.After(time.Now())
}

func (s *chainStore) GetRefreshToken(ctx context.Context, h store.TokenHash) (*store.RefreshToken, error) {
	rec, err := s.memory.GetRefreshToken(ctx, h)
	if s.fault == keepsAll && errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrExpired) {
		if old, ok := s.remembered(h); ok {
			return &old, store.ErrConsumed
		}
	}
	return rec, err
}

func (s *chainStore) RevokeRefreshToken(ctx context.Context, h store.TokenHash) error {
	if err := s.memory.RevokeRefreshToken(ctx, h); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.kept, h)
	s.mu.Unlock()
	return nil
}

// Faults of lifetimes.

// shortReplay keeps replay entries 300 ms, whatever their ttl.
type shortReplay struct{ *memory }

func (s shortReplay) Insert(ctx context.Context, k dpop.ReplayKey, _ time.Duration) (bool, error) {
	return s.memory.Insert(ctx, k, 300*time.Millisecond)
}

// shortRevocation revokes a grant for 200 ms at most.
type shortRevocation struct{ *memory }

func (s shortRevocation) RevokeGrant(ctx context.Context, grantID string, until time.Time) error {
	if soon := time.Now().Add(200 * time.Millisecond); soon.Before(until) {
		until = soon
	}
	return s.memory.RevokeGrant(ctx, grantID, until)
}

// revocationFault keeps grant revocations itself, one until per grant:
// either the last call's (a later, shorter revocation shortens it) or the
// first call's (a later, longer one does not extend it).
type revocationFault struct {
	*memory
	firstWins bool
	mu        sync.Mutex
	until     map[string]time.Time
}

func (s *revocationFault) RevokeGrant(ctx context.Context, grantID string, until time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.until[grantID]; ok && s.firstWins {
		return nil
	}
	s.until[grantID] = until
	return nil
}

func (s *revocationFault) revoked(grantID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.until[grantID]
	return ok && time.Now().Before(u)
}

func (s *revocationFault) GetAccessToken(ctx context.Context, h store.TokenHash) (*store.AccessToken, error) {
	t, err := s.memory.GetAccessToken(ctx, h)
	if err == nil && s.revoked(t.GrantID) {
		return nil, store.ErrRevoked
	}
	return t, err
}

func (s *revocationFault) GetRefreshToken(ctx context.Context, h store.TokenHash) (*store.RefreshToken, error) {
	t, err := s.memory.GetRefreshToken(ctx, h)
	if err == nil && s.revoked(t.GrantID) {
		return nil, store.ErrRevoked
	}
	return t, err
}

func (s *revocationFault) RotateRefreshToken(ctx context.Context, old, h store.TokenHash, next *store.RefreshToken) (*store.RefreshToken, error) {
	if t, err := s.memory.GetRefreshToken(ctx, old); err == nil && s.revoked(t.GrantID) {
		return nil, store.ErrRevoked
	}
	return s.memory.RotateRefreshToken(ctx, old, h, next)
}

// coarseExpiry expires records and replay entries on whole seconds, as a
// store that sets a key's expiry or TTL in seconds (EXPIREAT, EX, an
// integer column) would. The records keep their exact ExpiresAt, so round
// trips pass.
type coarseExpiry struct {
	*memory
	at    func(time.Time) time.Time         // when a record of that expiry expires
	ttl   func(time.Duration) time.Duration // how long a replay entry of that ttl lives
	mu    sync.Mutex
	exact map[coarseKey]time.Time // the ExpiresAt each record was saved with
}

type coarseKey struct {
	kind string
	h    store.TokenHash
}

// truncated expires records at the whole second before their expiry, and
// keeps replay entries whole seconds, at least one.
func truncated(m *store.Memory) store.Store {
	return &coarseExpiry{memory: m, exact: map[coarseKey]time.Time{},
		at:  func(t time.Time) time.Time { return t.Truncate(time.Second) },
		ttl: func(d time.Duration) time.Duration { return max(d.Truncate(time.Second), time.Second) },
	}
}

// rounded expires records and replay entries at the nearest whole second.
func rounded(m *store.Memory) store.Store {
	return &coarseExpiry{memory: m, exact: map[coarseKey]time.Time{},
		at: func(t time.Time) time.Time { return t.Round(time.Second) },
		ttl: func(d time.Duration) time.Duration {
			now := time.Now()
			return max(now.Add(d).Round(time.Second).Sub(now), time.Millisecond)
		},
	}
}

// coarse records exp as the exact expiry of the record under kind and h and
// returns the expiry to store it with.
func (s *coarseExpiry) coarse(kind string, h store.TokenHash, exp time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exact[coarseKey{kind, h}] = exp
	return s.at(exp)
}

// restore gives a record read back its exact expiry.
func (s *coarseExpiry) restore(kind string, h store.TokenHash, exp *time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.exact[coarseKey{kind, h}]; ok {
		*exp = e
	}
}

func (s *coarseExpiry) SaveCode(ctx context.Context, h store.TokenHash, c *store.AuthorizationCode) error {
	d := *c
	d.ExpiresAt = s.coarse("code", h, c.ExpiresAt)
	return s.memory.SaveCode(ctx, h, &d)
}

func (s *coarseExpiry) code(h store.TokenHash, c *store.AuthorizationCode, err error) (*store.AuthorizationCode, error) {
	if c != nil {
		s.restore("code", h, &c.ExpiresAt)
	}
	return c, err
}

func (s *coarseExpiry) GetCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	c, err := s.memory.GetCode(ctx, h)
	return s.code(h, c, err)
}

func (s *coarseExpiry) ConsumeCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	c, err := s.memory.ConsumeCode(ctx, h)
	return s.code(h, c, err)
}

func (s *coarseExpiry) SaveAccessToken(ctx context.Context, h store.TokenHash, t *store.AccessToken) error {
	d := *t
	d.ExpiresAt = s.coarse("access", h, t.ExpiresAt)
	return s.memory.SaveAccessToken(ctx, h, &d)
}

func (s *coarseExpiry) GetAccessToken(ctx context.Context, h store.TokenHash) (*store.AccessToken, error) {
	t, err := s.memory.GetAccessToken(ctx, h)
	if t != nil {
		s.restore("access", h, &t.ExpiresAt)
	}
	return t, err
}

func (s *coarseExpiry) SaveRefreshToken(ctx context.Context, h store.TokenHash, t *store.RefreshToken) error {
	d := *t
	d.ExpiresAt = s.coarse("refresh", h, t.ExpiresAt)
	return s.memory.SaveRefreshToken(ctx, h, &d)
}

func (s *coarseExpiry) GetRefreshToken(ctx context.Context, h store.TokenHash) (*store.RefreshToken, error) {
	t, err := s.memory.GetRefreshToken(ctx, h)
	if t != nil {
		s.restore("refresh", h, &t.ExpiresAt)
	}
	return t, err
}

func (s *coarseExpiry) RotateRefreshToken(ctx context.Context, old, h store.TokenHash, next *store.RefreshToken) (*store.RefreshToken, error) {
	d := *next
	d.ExpiresAt = s.coarse("refresh", h, next.ExpiresAt)
	t, err := s.memory.RotateRefreshToken(ctx, old, h, &d)
	if t != nil {
		s.restore("refresh", old, &t.ExpiresAt)
	}
	return t, err
}

func (s *coarseExpiry) Insert(ctx context.Context, k dpop.ReplayKey, ttl time.Duration) (bool, error) {
	return s.memory.Insert(ctx, k, s.ttl(ttl))
}

// hangsOnce never returns from the first rotation, in the process, of a
// token that was rotated already, as a store that leaves a lock taken on its reuse path
// would; every other call works. The watchdog must turn that into a
// failure of the subtest.
type hangsOnce struct {
	*memory
	once *sync.Once // one per process: the subtests after the first pass
}

var hangOnce sync.Once

func (s *hangsOnce) RotateRefreshToken(ctx context.Context, old, h store.TokenHash, next *store.RefreshToken) (*store.RefreshToken, error) {
	prev, err := s.memory.RotateRefreshToken(ctx, old, h, next)
	if errors.Is(err, store.ErrConsumed) {
		hang := false
		s.once.Do(func() { hang = true })
		if hang {
			select {}
		}
	}
	return prev, err
}

// Faults of pushed authorization requests (store.PushedRequestStore).

// nonAtomicPushed reads a pushed request, then marks it consumed in a second
// step: concurrent consumers may each get it, so one request_uri would
// authorize twice.
type nonAtomicPushed struct {
	*memory
	window func()
	mu     sync.Mutex
	reqs   map[store.TokenHash]*pushedState
}

type pushedState struct {
	rec  store.PushedRequest
	used bool
}

func (s *nonAtomicPushed) SavePushedRequest(ctx context.Context, h store.TokenHash, r *store.PushedRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs[h] = &pushedState{rec: *r}
	return nil
}

// lookup returns a copy of the request under h and whether it was used, or
// the error of an unknown or expired one.
func (s *nonAtomicPushed) lookup(ctx context.Context, h store.TokenHash) (*pushedState, store.PushedRequest, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, store.PushedRequest{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reqs[h]
	switch {
	case !ok:
		return nil, store.PushedRequest{}, false, store.ErrNotFound
	case !r.rec.ExpiresAt.After(time.Now()):
		return nil, store.PushedRequest{}, false, store.ErrExpired
	}
	return r, r.rec, r.used, nil
}

func (s *nonAtomicPushed) GetPushedRequest(ctx context.Context, h store.TokenHash) (*store.PushedRequest, error) {
	_, rec, used, err := s.lookup(ctx, h)
	switch {
	case err != nil:
		return nil, err
	case used:
		return &rec, store.ErrConsumed
	}
	return &rec, nil
}

func (s *nonAtomicPushed) ConsumePushedRequest(ctx context.Context, h store.TokenHash) (*store.PushedRequest, error) {
	r, rec, used, err := s.lookup(ctx, h)
	switch {
	case err != nil:
		return nil, err
	case used:
		return &rec, store.ErrConsumed
	}
	s.window()
	s.mu.Lock()
	r.used = true
	s.mu.Unlock()
	return &rec, nil
}

// pushedNeverConsumed answers every consumption of a live pushed request
// with the record and no error: the request is consumed as often as it is
// asked.
type pushedNeverConsumed struct{ *memory }

func (s pushedNeverConsumed) ConsumePushedRequest(ctx context.Context, h store.TokenHash) (*store.PushedRequest, error) {
	return s.memory.GetPushedRequest(ctx, h)
}

// consumingPushedGet consumes the pushed request it is asked to look up: the
// user who loads the authorization page twice is refused.
type consumingPushedGet struct{ *memory }

func (s consumingPushedGet) GetPushedRequest(ctx context.Context, h store.TokenHash) (*store.PushedRequest, error) {
	return s.memory.ConsumePushedRequest(ctx, h)
}

// withoutPushed is a correct store that does not implement
// store.PushedRequestStore: only the methods of store.Store are promoted.
type withoutPushed struct{ store.Store }
