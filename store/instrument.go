package store

import (
	"context"
	"errors"
	"time"

	"github.com/dpopkit/dpop"
)

// Operation names of [dpop.StoreEvent]: one fixed name per store method,
// the operation label of dpop_store_duration_seconds.
const (
	OpGetClient                = "get_client"
	OpSaveClient               = "save_client"
	OpSaveCode                 = "save_code"
	OpGetCode                  = "get_code"
	OpConsumeCode              = "consume_code"
	OpSaveAccessToken          = "save_access_token"
	OpGetAccessToken           = "get_access_token"
	OpRevokeAccessToken        = "revoke_access_token"
	OpSaveRefreshToken         = "save_refresh_token"
	OpGetRefreshToken          = "get_refresh_token"
	OpRotateRefreshToken       = "rotate_refresh_token"
	OpRevokeRefreshToken       = "revoke_refresh_token"
	OpRevokeGrant              = "revoke_grant"
	OpReplayInsert             = "replay_insert"
	OpInsertAndSaveAccessToken = "insert_and_save_access_token"
	OpUseAccessToken           = "use_access_token"
	OpSavePushedRequest        = "save_pushed_request"
	OpGetPushedRequest         = "get_pushed_request"
	OpConsumePushedRequest     = "consume_pushed_request"
	OpPing                     = "ping"
)

// Outcomes of a store call ([Outcome]), the result label of
// dpop_store_duration_seconds.
const (
	// OutcomeOK: the call succeeded.
	OutcomeOK = "ok"
	// OutcomeMiss: the store answered that the record is unknown, expired,
	// consumed or revoked (ErrNotFound, ErrExpired, ErrConsumed,
	// ErrRevoked): an answer, not a failure.
	OutcomeMiss = "miss"
	// OutcomeFull: a bounded store had no room (ErrFull, ErrShareFull).
	OutcomeFull = "full"
	// OutcomeCanceled: the caller's context ended first.
	OutcomeCanceled = "canceled"
	// OutcomeError: any other error: the store failed.
	OutcomeError = "error"
)

// Outcome classifies the error of a store call, so that a metric counts
// failures apart from answers: an alert on store errors watches
// OutcomeError only.
func Outcome(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConsumed), errors.Is(err, ErrRevoked):
		return OutcomeMiss
	case errors.Is(err, ErrFull):
		return OutcomeFull
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return OutcomeCanceled
	}
	return OutcomeError
}

// Instrument returns s with every call timed and reported to
// hooks.StoreCall ([dpop.StoreEvent]); with a nil hooks or StoreCall it
// returns s itself. Hand the result to both the handlers (Config.Store) and
// the middleware (StoreValidator, DPoP.ReplayCache), so that replay cache
// inserts are timed too:
//
//	st = store.Instrument(st, hooks)
//
// The wrapper implements exactly the optional interfaces s implements, and
// forwards them: PushedRequestStore (timed), [Pinger] (timed), the replay
// cache's Capacity (from which dpop sizes quotas) and
// [dpop.ReplayCacheStats] (not timed: no store call). Methods s has beyond
// these (Close…) are not visible through it: keep s to call them.
//
// [AccessTokenIssuer] and [AccessTokenUser] are the exceptions: the wrapper
// always implements them (more optional interfaces would multiply the
// wrapper types, which Go cannot compose at run time). When s implements
// one, the call is forwarded and reported as one event
// (OpInsertAndSaveAccessToken, OpUseAccessToken); when not, it is made of
// the two calls it stands for, reported as such: Insert then, for a new
// key, SaveAccessToken (RFC 9449 §11.1 replay check first, the token saved
// only for a new proof); GetAccessToken then, for a live token bound to
// the proof's key, Insert.
func Instrument(s Store, hooks *dpop.Hooks) Store {
	if s == nil || hooks == nil || hooks.StoreCall == nil {
		return s
	}
	in := &instrumented{s: s, call: hooks.StoreCall}
	in.issuer, _ = s.(AccessTokenIssuer)
	in.user, _ = s.(AccessTokenUser)
	var mask int
	pushed, okPushed := s.(PushedRequestStore)
	pinger, okPing := s.(Pinger)
	stats, okStats := s.(dpop.ReplayCacheStats)
	if okPushed {
		mask |= 1
	}
	if okPing {
		mask |= 2
	}
	if okStats {
		mask |= 4
	}
	p, g, r := pushedPart{in, pushed}, pingPart{in, pinger}, statsPart{stats}
	switch mask {
	case 1:
		return struct {
			*instrumented
			pushedPart
		}{in, p}
	case 2:
		return struct {
			*instrumented
			pingPart
		}{in, g}
	case 3:
		return struct {
			*instrumented
			pushedPart
			pingPart
		}{in, p, g}
	case 4:
		return struct {
			*instrumented
			statsPart
		}{in, r}
	case 5:
		return struct {
			*instrumented
			pushedPart
			statsPart
		}{in, p, r}
	case 6:
		return struct {
			*instrumented
			pingPart
			statsPart
		}{in, g, r}
	case 7:
		return struct {
			*instrumented
			pushedPart
			pingPart
			statsPart
		}{in, p, g, r}
	}
	return in
}

// instrumented times the methods of Store.
type instrumented struct {
	s      Store
	issuer AccessTokenIssuer // nil when s does not implement it
	user   AccessTokenUser   // nil when s does not implement it
	call   func(dpop.StoreEvent)
}

// done reports a call made with ctx that began at start.
func (in *instrumented) done(ctx context.Context, op string, start time.Time, err error) {
	in.call(dpop.StoreEvent{Operation: op, Duration: time.Since(start), Err: err, Context: ctx})
}

// Capacity forwards the replay cache's capacity, 0 (unknown, which dpop
// treats as absent) when s does not tell.
func (in *instrumented) Capacity() int {
	if c, ok := in.s.(interface{ Capacity() int }); ok {
		return c.Capacity()
	}
	return 0
}

// GetClient calls the wrapped store's GetClient and reports the call.
func (in *instrumented) GetClient(ctx context.Context, id string) (*Client, error) {
	start := time.Now()
	c, err := in.s.GetClient(ctx, id)
	in.done(ctx, OpGetClient, start, err)
	return c, err
}

// SaveClient calls the wrapped store's SaveClient and reports the call.
func (in *instrumented) SaveClient(ctx context.Context, c *Client) error {
	start := time.Now()
	err := in.s.SaveClient(ctx, c)
	in.done(ctx, OpSaveClient, start, err)
	return err
}

// SaveCode calls the wrapped store's SaveCode and reports the call.
func (in *instrumented) SaveCode(ctx context.Context, h TokenHash, code *AuthorizationCode) error {
	start := time.Now()
	err := in.s.SaveCode(ctx, h, code)
	in.done(ctx, OpSaveCode, start, err)
	return err
}

// GetCode calls the wrapped store's GetCode and reports the call.
func (in *instrumented) GetCode(ctx context.Context, h TokenHash) (*AuthorizationCode, error) {
	start := time.Now()
	c, err := in.s.GetCode(ctx, h)
	in.done(ctx, OpGetCode, start, err)
	return c, err
}

// ConsumeCode calls the wrapped store's ConsumeCode and reports the call.
func (in *instrumented) ConsumeCode(ctx context.Context, h TokenHash) (*AuthorizationCode, error) {
	start := time.Now()
	c, err := in.s.ConsumeCode(ctx, h)
	in.done(ctx, OpConsumeCode, start, err)
	return c, err
}

// SaveAccessToken calls the wrapped store's SaveAccessToken and reports the call.
func (in *instrumented) SaveAccessToken(ctx context.Context, h TokenHash, t *AccessToken) error {
	start := time.Now()
	err := in.s.SaveAccessToken(ctx, h, t)
	in.done(ctx, OpSaveAccessToken, start, err)
	return err
}

// GetAccessToken calls the wrapped store's GetAccessToken and reports the call.
func (in *instrumented) GetAccessToken(ctx context.Context, h TokenHash) (*AccessToken, error) {
	start := time.Now()
	t, err := in.s.GetAccessToken(ctx, h)
	in.done(ctx, OpGetAccessToken, start, err)
	return t, err
}

// RevokeAccessToken calls the wrapped store's RevokeAccessToken and reports the call.
func (in *instrumented) RevokeAccessToken(ctx context.Context, h TokenHash) error {
	start := time.Now()
	err := in.s.RevokeAccessToken(ctx, h)
	in.done(ctx, OpRevokeAccessToken, start, err)
	return err
}

// SaveRefreshToken calls the wrapped store's SaveRefreshToken and reports the call.
func (in *instrumented) SaveRefreshToken(ctx context.Context, h TokenHash, t *RefreshToken) error {
	start := time.Now()
	err := in.s.SaveRefreshToken(ctx, h, t)
	in.done(ctx, OpSaveRefreshToken, start, err)
	return err
}

// GetRefreshToken calls the wrapped store's GetRefreshToken and reports the call.
func (in *instrumented) GetRefreshToken(ctx context.Context, h TokenHash) (*RefreshToken, error) {
	start := time.Now()
	t, err := in.s.GetRefreshToken(ctx, h)
	in.done(ctx, OpGetRefreshToken, start, err)
	return t, err
}

// RotateRefreshToken calls the wrapped store's RotateRefreshToken and reports the call.
func (in *instrumented) RotateRefreshToken(ctx context.Context, old, h TokenHash, next *RefreshToken) (*RefreshToken, error) {
	start := time.Now()
	t, err := in.s.RotateRefreshToken(ctx, old, h, next)
	in.done(ctx, OpRotateRefreshToken, start, err)
	return t, err
}

// RevokeRefreshToken calls the wrapped store's RevokeRefreshToken and reports the call.
func (in *instrumented) RevokeRefreshToken(ctx context.Context, h TokenHash) error {
	start := time.Now()
	err := in.s.RevokeRefreshToken(ctx, h)
	in.done(ctx, OpRevokeRefreshToken, start, err)
	return err
}

// RevokeGrant calls the wrapped store's RevokeGrant and reports the call.
func (in *instrumented) RevokeGrant(ctx context.Context, grantID string, until time.Time) error {
	start := time.Now()
	err := in.s.RevokeGrant(ctx, grantID, until)
	in.done(ctx, OpRevokeGrant, start, err)
	return err
}

// Insert calls the wrapped store's Insert and reports the call.
func (in *instrumented) Insert(ctx context.Context, key dpop.ReplayKey, ttl time.Duration) (bool, error) {
	start := time.Now()
	ok, err := in.s.Insert(ctx, key, ttl)
	in.done(ctx, OpReplayInsert, start, err)
	return ok, err
}

// InsertAndSaveAccessToken calls the wrapped store's
// InsertAndSaveAccessToken and reports the call, or, when the store has
// none, calls Insert and, for a new key, SaveAccessToken, each reported.
func (in *instrumented) InsertAndSaveAccessToken(ctx context.Context, key dpop.ReplayKey, ttl time.Duration, h TokenHash, t *AccessToken) (bool, error) {
	if in.issuer == nil {
		ok, err := in.Insert(ctx, key, ttl)
		if err != nil || !ok {
			return false, err
		}
		return true, in.SaveAccessToken(ctx, h, t)
	}
	start := time.Now()
	ok, err := in.issuer.InsertAndSaveAccessToken(ctx, key, ttl, h, t)
	in.done(ctx, OpInsertAndSaveAccessToken, start, err)
	return ok, err
}

// UseAccessToken calls the wrapped store's UseAccessToken and reports the
// call, or, when the store has none, calls GetAccessToken and, for a live
// token bound to jkt, Insert, each reported: the steps of the two calls
// made apart, in the store's one replay cache.
func (in *instrumented) UseAccessToken(ctx context.Context, h TokenHash, jkt string, key dpop.ReplayKey, ttl time.Duration) (*AccessToken, bool, error) {
	if in.user == nil {
		return UseAccessTokenApart(ctx, in, h, jkt, key, ttl)
	}
	start := time.Now()
	t, ok, err := in.user.UseAccessToken(ctx, h, jkt, key, ttl)
	in.done(ctx, OpUseAccessToken, start, err)
	return t, ok, err
}

// pushedPart times the methods of PushedRequestStore.
type pushedPart struct {
	in *instrumented
	p  PushedRequestStore
}

// SavePushedRequest calls the wrapped store's SavePushedRequest and reports the call.
func (w pushedPart) SavePushedRequest(ctx context.Context, h TokenHash, r *PushedRequest) error {
	start := time.Now()
	err := w.p.SavePushedRequest(ctx, h, r)
	w.in.done(ctx, OpSavePushedRequest, start, err)
	return err
}

// GetPushedRequest calls the wrapped store's GetPushedRequest and reports the call.
func (w pushedPart) GetPushedRequest(ctx context.Context, h TokenHash) (*PushedRequest, error) {
	start := time.Now()
	r, err := w.p.GetPushedRequest(ctx, h)
	w.in.done(ctx, OpGetPushedRequest, start, err)
	return r, err
}

// ConsumePushedRequest calls the wrapped store's ConsumePushedRequest and reports the call.
func (w pushedPart) ConsumePushedRequest(ctx context.Context, h TokenHash) (*PushedRequest, error) {
	start := time.Now()
	r, err := w.p.ConsumePushedRequest(ctx, h)
	w.in.done(ctx, OpConsumePushedRequest, start, err)
	return r, err
}

// pingPart times Ping.
type pingPart struct {
	in *instrumented
	p  Pinger
}

// Ping calls the wrapped store's Ping and reports the call.
func (w pingPart) Ping(ctx context.Context) error {
	start := time.Now()
	err := w.p.Ping(ctx)
	w.in.done(ctx, OpPing, start, err)
	return err
}

// statsPart forwards the replay cache's fill level, untimed.
type statsPart struct{ s dpop.ReplayCacheStats }

// ReplayEntries forwards to the wrapped store, untimed.
func (w statsPart) ReplayEntries() int { return w.s.ReplayEntries() }
