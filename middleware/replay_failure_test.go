package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
)

// replayDown is a replay cache that cannot record a proof: Insert returns
// inserted and err.
type replayDown struct {
	inserted bool
	err      error
	calls    atomic.Int32
}

func (c *replayDown) Insert(context.Context, dpop.ReplayKey, time.Duration) (bool, error) {
	c.calls.Add(1)
	return c.inserted, c.err
}

// Item: at the resource server, a replay cache that fails (down, full, or
// claiming an insert together with an error) refuses the request with 503
// server_error, cause the dpop sentinel: never a pass to the handler, and
// never a 401 that would tell the client its valid proof was bad.
func TestResourceReplayCacheFailure(t *testing.T) {
	down := errors.New("connection refused")
	for _, tc := range []struct {
		name     string
		inserted bool
		err      error
		cause    error
	}{
		{"down", false, down, dpop.ErrReplayCacheUnavailable},
		{"down, claims the insert", true, down, dpop.ErrReplayCacheUnavailable},
		{"full", false, dpop.ErrReplayCacheFull, dpop.ErrReplayCacheFull},
		{"full, wrapped", false, errors.Join(errors.New("shard 3"), dpop.ErrReplayCacheFull), dpop.ErrReplayCacheFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := &replayDown{inserted: tc.inserted, err: tc.err}
			var mu sync.Mutex
			var refusals []*Error
			r := newRS(t, func(o *Options) {
				o.DPoP.ReplayCache = cache
				o.ErrorHandler = func(w http.ResponseWriter, req *http.Request, e *Error) {
					mu.Lock()
					refusals = append(refusals, e)
					mu.Unlock()
					WriteError(w, req, e)
				}
			})
			got := r.get(apiPath, r.dpopHeaders(apiPath))
			wantChallenge(t, got, http.StatusServiceUnavailable, dpop.CodeServerError)
			var body map[string]string
			if err := json.Unmarshal([]byte(got.body), &body); err != nil || body["error"] != string(dpop.CodeServerError) {
				t.Errorf("body %s", got.body)
			}
			if cache.calls.Load() != 1 {
				t.Errorf("%d inserts, want 1 (the proof passed every other check)", cache.calls.Load())
			}
			mu.Lock()
			defer mu.Unlock()
			if len(refusals) != 1 {
				t.Fatalf("%d refusals", len(refusals))
			}
			e := refusals[0]
			if e.Status != http.StatusServiceUnavailable || e.Code != dpop.CodeServerError || !errors.Is(e, tc.cause) {
				t.Errorf("refusal %d %q cause %v, want 503 %q %v", e.Status, e.Code, e.Err, dpop.CodeServerError, tc.cause)
			}
		})
	}
}
