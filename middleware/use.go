package middleware

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
	lru "github.com/hashicorp/golang-lru/v2"
)

// One round trip per request to a shared store (RFC 9449 §7.1, §11.1).
//
// With a StoreValidator whose store is also the replay cache and
// implements store.AccessTokenUser, the middleware records each proof with
// UseAccessToken, which reads the token again and records the proof only
// if the token is still live and bound to the proof's key, in one atomic
// step. A token's first request is looked up (Validate) before its proof
// is checked, as with any validator. Once a proof of it has been accepted,
// the middleware remembers the token's binding (its key, parties, audience
// and expiry: the parts of a record that never change), so that the next
// requests are checked against it, and charged to its parties, without
// that lookup: their only store call is UseAccessToken, whose answer
// decides whether the token is still good. A token revoked since is
// refused by that call, which then records nothing, and is forgotten.

// binding is what the middleware remembers of an access token whose proof
// it accepted.
type binding struct {
	jkt, client, grant string
	audience           []string
	expires            time.Time
}

// tokenUse is the one-round-trip path of a middleware: the store and the
// bindings of the tokens it accepted, a bounded LRU.
type tokenUse struct {
	user     store.AccessTokenUser
	bindings *lru.Cache[store.TokenHash, binding]
}

// newTokenUse returns the one-round-trip path for validator and cache, or
// nil when they do not allow it: the validator must be a StoreValidator
// with OneRoundTrip whose store implements store.AccessTokenUser and is
// cache itself (the replay entries UseAccessToken records must be the
// verifier's).
func newTokenUse(validator TokenValidator, cache dpop.ReplayCache, size int) *tokenUse {
	var v StoreValidator
	switch sv := validator.(type) {
	case StoreValidator:
		v = sv
	case *StoreValidator:
		v = *sv
	}
	u, ok := v.Store.(store.AccessTokenUser)
	if !ok || !v.OneRoundTrip || !store.Same(v.Store, cache) {
		return nil
	}
	l, _ := lru.New[store.TokenHash, binding](size) // size is positive
	return &tokenUse{user: u, bindings: l}
}

// lookup returns the binding of the token with hash h, unless it is unknown
// or past its expiry at now.
func (u *tokenUse) lookup(h store.TokenHash, now time.Time) (binding, bool) {
	b, ok := u.bindings.Get(h)
	if ok && !now.Before(b.expires) {
		u.bindings.Remove(h)
		return binding{}, false
	}
	return b, ok
}

// remember keeps the binding of the token p stands for.
func (u *tokenUse) remember(h store.TokenHash, p *Principal) {
	u.bindings.Add(h, binding{jkt: p.JKT, client: p.ClientID, grant: p.GrantID,
		audience: slices.Clone(p.Audience), expires: p.ExpiresAt})
}

// principal is the part of a Principal a binding knows: enough to check
// the audience and the proof, and to charge the proof to its parties.
func (b binding) principal() *Principal {
	return &Principal{JKT: b.jkt, ClientID: b.client, GrantID: b.grant, Audience: b.audience, ExpiresAt: b.expires}
}

// usage is one request's UseAccessToken call: the token's hash, and what
// the call read.
type usage struct {
	h store.TokenHash
	// t is the token read, when it was live.
	t *store.AccessToken
	// refused is the validator's refusal of a token that is no longer
	// live (revoked, expired, unknown), or bound to another key: the call
	// recorded nothing.
	refused error
}

// insert is the dpop.InsertFunc recording a proof made with the key jkt
// through UseAccessToken. A token refusal records nothing and reports no
// insertion, so that the proof's charge is refunded; the request is then
// refused for its token (u.refused), not as a replay.
func (u *usage) insert(user store.AccessTokenUser, jkt string) dpop.InsertFunc {
	return func(ctx context.Context, key dpop.ReplayKey, ttl time.Duration) (bool, error) {
		t, inserted, err := user.UseAccessToken(ctx, u.h, jkt, key, ttl)
		switch {
		case err != nil:
			if err := storeTokenError(err); errors.Is(err, ErrInvalidToken) {
				u.refused = err
				return false, nil
			}
			return false, err
		case t.JKT != jkt:
			u.refused = fmt.Errorf("%w: %w", ErrInvalidToken, dpop.ErrKeyMismatch)
			return false, nil
		}
		u.t = t
		return inserted, nil
	}
}
