package store

import (
	"context"
	"time"

	"github.com/dpopkit/dpop"
)

// AccessTokenIssuer is implemented by a store that is also the token
// endpoint's replay cache and can record a proof's replay entry and save
// the access token issued for it in one step, one round trip to a store
// out of process instead of two. The handlers use it for the client
// credentials grant with opaque tokens when Config.OneRoundTrip is set and
// the verifier's ReplayCache is the store itself.
type AccessTokenIssuer interface {
	// InsertAndSaveAccessToken records key for ttl as
	// [dpop.ReplayCache.Insert] does (RFC 9449 §11.1) and, only when key
	// was not recorded before, saves t under h as
	// [AccessTokenStore.SaveAccessToken] does (RFC 9449 §6: t is bound to
	// the proof's key). Of concurrent calls with one key exactly one saves
	// its token; a call that finds key recorded returns false and saves
	// nothing.
	//
	// An error with inserted false means the call failed: the handlers
	// refuse the request (503). What was written is unknown, as with any
	// failed write (a Redis write its replicas did not acknowledge may be
	// on the master: the proof then stays spent, and the token, never
	// returned, is never used). An error with inserted true is allowed
	// only for a store that cannot do both atomically: key was recorded but
	// t could not be saved, as when Insert succeeds and SaveAccessToken
	// fails.
	//
	// The handlers use it only with Config.OneRoundTrip: a type that
	// embeds a store inherits its InsertAndSaveAccessToken, which knows
	// nothing of the type's own Insert or SaveAccessToken.
	InsertAndSaveAccessToken(ctx context.Context, key dpop.ReplayKey, ttl time.Duration, h TokenHash, t *AccessToken) (inserted bool, err error)
}
