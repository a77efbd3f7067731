package adaptertest

import (
	"context"
	"fmt"
	"runtime/debug"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// CallTimeout bounds every store call Run makes, and the release of each
// store. A call that has not returned by then fails the subtest that made
// it, with an error saying so, instead of hanging the test binary until
// go test's -timeout kills it with no verdict. It is generous: a store
// that needs more than this for one call is broken, not slow.
const CallTimeout = 20 * time.Second

// errHung is the error a store call gets from the watchdog when it did not
// return within CallTimeout.
var errHung = fmt.Errorf("store call did not return within %v (deadlock?)", CallTimeout)

// watched is the store a subtest of Run sees: every method runs the call
// in a goroutine of its own and waits at most CallTimeout for it, so that a
// hung store turns into a failure of the subtest that called it. This is
// the watchdog of nettest.TestConn, per call: the test goroutine never
// blocks in the store, so the subtest ends, reports and releases its store
// as usual; the hung call is left behind in its goroutine, which touches
// nothing of the test, so it cannot write into the output of a later
// subtest.
type watched struct {
	t *testing.T
	s store.Store
}

var _ store.Store = (*watched)(nil)

// outcome is what a store call gave: its results, or the panic it raised.
type outcome[R any] struct {
	v        R
	err      error
	panicked any
	exited   bool // the call ended the goroutine (runtime.Goexit)
}

// bounded runs call in a goroutine of its own and returns its results, or
// errHung when it has not returned within CallTimeout. A panic in the store
// is raised again in the caller's goroutine, where the testing package
// reports it against the subtest. It may be called from any goroutine of
// the subtest: it reports with t.Errorf only.
func bounded[R any](t *testing.T, name string, call func() (R, error)) (R, error) {
	t.Helper()
	done := make(chan outcome[R], 1) // buffered: a late call never blocks
	go func() {
		var o outcome[R]
		returned := false
		defer func() {
			if p := recover(); p != nil {
				o.panicked = fmt.Sprintf("%v\n\nin the store call %s:\n%s", p, name, debug.Stack())
			} else if !returned {
				o.exited = true
			}
			done <- o
		}()
		o.v, o.err = call()
		returned = true
	}()
	timer := time.NewTimer(CallTimeout)
	defer timer.Stop()
	var zero R
	select {
	case o := <-done:
		switch {
		case o.panicked != nil:
			panic(o.panicked)
		case o.exited:
			t.Errorf("store call %s called runtime.Goexit (t.FailNow in the store?)", name)
			return zero, fmt.Errorf("%s: did not return", name)
		}
		return o.v, o.err
	case <-timer.C:
		t.Errorf("store call %s did not return within %v (deadlock?); it is left running", name, CallTimeout)
		return zero, fmt.Errorf("%s: %w", name, errHung)
	}
}

// boundedErr is bounded for a call that only returns an error.
func boundedErr(t *testing.T, name string, call func() error) error {
	t.Helper()
	_, err := bounded(t, name, func() (struct{}, error) { return struct{}{}, call() })
	return err
}

// release runs a store's cleanup under the same bound: a store that hangs
// on Close (a pool waiting for the connection of a hung call, say) fails
// its subtest instead of hanging the binary. bounded reports any trouble.
func release(t *testing.T, cleanup func()) {
	boundedErr(t, "cleanup", func() error { cleanup(); return nil })
}

// GetClient implements store.ClientStore.
func (w *watched) GetClient(ctx context.Context, id string) (*store.Client, error) {
	w.t.Helper()
	return bounded(w.t, "GetClient", func() (*store.Client, error) { return w.s.GetClient(ctx, id) })
}

// SaveClient implements store.ClientStore.
func (w *watched) SaveClient(ctx context.Context, c *store.Client) error {
	w.t.Helper()
	return boundedErr(w.t, "SaveClient", func() error { return w.s.SaveClient(ctx, c) })
}

// SaveCode implements store.CodeStore.
func (w *watched) SaveCode(ctx context.Context, h store.TokenHash, c *store.AuthorizationCode) error {
	w.t.Helper()
	return boundedErr(w.t, "SaveCode", func() error { return w.s.SaveCode(ctx, h, c) })
}

// GetCode implements store.CodeStore.
func (w *watched) GetCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	w.t.Helper()
	return bounded(w.t, "GetCode", func() (*store.AuthorizationCode, error) { return w.s.GetCode(ctx, h) })
}

// ConsumeCode implements store.CodeStore.
func (w *watched) ConsumeCode(ctx context.Context, h store.TokenHash) (*store.AuthorizationCode, error) {
	w.t.Helper()
	return bounded(w.t, "ConsumeCode", func() (*store.AuthorizationCode, error) { return w.s.ConsumeCode(ctx, h) })
}

// SaveAccessToken implements store.AccessTokenStore.
func (w *watched) SaveAccessToken(ctx context.Context, h store.TokenHash, tok *store.AccessToken) error {
	w.t.Helper()
	return boundedErr(w.t, "SaveAccessToken", func() error { return w.s.SaveAccessToken(ctx, h, tok) })
}

// GetAccessToken implements store.AccessTokenStore.
func (w *watched) GetAccessToken(ctx context.Context, h store.TokenHash) (*store.AccessToken, error) {
	w.t.Helper()
	return bounded(w.t, "GetAccessToken", func() (*store.AccessToken, error) { return w.s.GetAccessToken(ctx, h) })
}

// RevokeAccessToken implements store.AccessTokenStore.
func (w *watched) RevokeAccessToken(ctx context.Context, h store.TokenHash) error {
	w.t.Helper()
	return boundedErr(w.t, "RevokeAccessToken", func() error { return w.s.RevokeAccessToken(ctx, h) })
}

// SaveRefreshToken implements store.RefreshTokenStore.
func (w *watched) SaveRefreshToken(ctx context.Context, h store.TokenHash, tok *store.RefreshToken) error {
	w.t.Helper()
	return boundedErr(w.t, "SaveRefreshToken", func() error { return w.s.SaveRefreshToken(ctx, h, tok) })
}

// GetRefreshToken implements store.RefreshTokenStore.
func (w *watched) GetRefreshToken(ctx context.Context, h store.TokenHash) (*store.RefreshToken, error) {
	w.t.Helper()
	return bounded(w.t, "GetRefreshToken", func() (*store.RefreshToken, error) { return w.s.GetRefreshToken(ctx, h) })
}

// RotateRefreshToken implements store.RefreshTokenStore.
func (w *watched) RotateRefreshToken(ctx context.Context, old, h store.TokenHash, next *store.RefreshToken) (*store.RefreshToken, error) {
	w.t.Helper()
	return bounded(w.t, "RotateRefreshToken", func() (*store.RefreshToken, error) { return w.s.RotateRefreshToken(ctx, old, h, next) })
}

// RevokeRefreshToken implements store.RefreshTokenStore.
func (w *watched) RevokeRefreshToken(ctx context.Context, h store.TokenHash) error {
	w.t.Helper()
	return boundedErr(w.t, "RevokeRefreshToken", func() error { return w.s.RevokeRefreshToken(ctx, h) })
}

// RevokeGrant implements store.GrantStore.
func (w *watched) RevokeGrant(ctx context.Context, grantID string, until time.Time) error {
	w.t.Helper()
	return boundedErr(w.t, "RevokeGrant", func() error { return w.s.RevokeGrant(ctx, grantID, until) })
}

// Insert implements dpop.ReplayCache.
func (w *watched) Insert(ctx context.Context, k dpop.ReplayKey, ttl time.Duration) (bool, error) {
	w.t.Helper()
	return bounded(w.t, "Insert", func() (bool, error) { return w.s.Insert(ctx, k, ttl) })
}
