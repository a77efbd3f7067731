package store

import (
	"context"
	"reflect"
	"time"

	"github.com/dpopkit/dpop"
)

// AccessTokenUser is implemented by stores that read an access token and
// record the proof sent with it in the replay cache in one atomic step
// (RFC 9449 §7.1, §11.1): one round trip to a shared store instead of two.
// The middleware uses it for every proof sent to a resource when its
// validator reads tokens from the store that is also its replay cache; a
// resource's proofs are then recorded nowhere else, so a store may keep
// these entries apart from those of Insert (the Redis store keeps each
// beside its token, in the token's Cluster slot). Every instance of a
// resource must therefore use it alike: during a rolling upgrade from a
// version without it, a proof accepted by an old instance may be accepted
// once more by a new one.
//
// A type that embeds a store inherits the store's UseAccessToken, which
// knows nothing of the type's own GetAccessToken or Insert: the middleware
// uses it only when asked to (middleware.StoreValidator.OneRoundTrip).
type AccessTokenUser interface {
	// UseAccessToken returns the token under h, with the errors of
	// GetAccessToken, and, only when it is live and bound to jkt (its JKT
	// equals jkt, compared exactly), records key for ttl as
	// dpop.ReplayCache.Insert does, in one atomic step. inserted reports
	// whether this call recorded key: false for a replay, and for a token
	// bound to another key, which is returned with nothing recorded. A
	// token that is not live (an error) records nothing either.
	UseAccessToken(ctx context.Context, h TokenHash, jkt string, key dpop.ReplayKey, ttl time.Duration) (t *AccessToken, inserted bool, err error)
}

// UseAccessTokenApart does what UseAccessToken does in two calls of s:
// GetAccessToken, then, for a live token bound to jkt, Insert into s's
// replay cache. It is not atomic (a token revoked between the two is
// refused by the next request), and it is what a store without
// AccessTokenUser costs: two round trips.
func UseAccessTokenApart(ctx context.Context, s interface {
	AccessTokenStore
	dpop.ReplayCache
}, h TokenHash, jkt string, key dpop.ReplayKey, ttl time.Duration) (*AccessToken, bool, error) {
	t, err := s.GetAccessToken(ctx, h)
	if err != nil || t.JKT != jkt {
		return t, false, err
	}
	ok, err := s.Insert(ctx, key, ttl)
	if err != nil {
		return nil, false, err
	}
	return t, ok, nil
}

// Same reports whether a and b hold the same value, such as a store that is
// also given as the replay cache, without the panic == raises on values of
// a type that cannot be compared (those are never the same).
func Same(a, b any) bool {
	va := reflect.ValueOf(a)
	return va.IsValid() && va.Comparable() && reflect.TypeOf(b) == va.Type() && a == b
}
