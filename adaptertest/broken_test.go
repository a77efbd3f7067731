package adaptertest_test

import (
	"context"
	"maps"
	"net"
	"net/http"
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

// nonAtomicConsume reads a code, then marks it consumed in a second step.
type nonAtomicConsume struct {
	*memory
	mu    sync.Mutex
	codes map[store.TokenHash]*codeState
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
	gap()
	s.mu.Lock()
	c.used = true
	s.mu.Unlock()
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

// nonAtomicReplay checks for a key, then records it in a second step.
type nonAtomicReplay struct {
	*memory
	mu   sync.Mutex
	seen map[dpop.ReplayKey]bool
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
	gap()
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
type nonAtomicRotate struct{ *memory }

func (s nonAtomicRotate) RotateRefreshToken(ctx context.Context, old, h store.TokenHash, next *store.RefreshToken) (*store.RefreshToken, error) {
	prev, err := s.memory.GetRefreshToken(ctx, old)
	if err != nil {
		return prev, err
	}
	gap()
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
		return &t, nil
	}
	rec, err := s.memory.GetAccessToken(ctx, h)
	if err == nil {
		s.mu.Lock()
		s.cache(ctx)[h] = *rec
		s.mu.Unlock()
	}
	return rec, err
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
