package store

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Pinger is implemented by a store that can tell whether it can serve
// requests now: the memory store (always), redisstore (PING) and pgstore (a
// round trip to the server). Ping returns nil when the store answered
// within ctx.
type Pinger interface {
	Ping(ctx context.Context) error
}

// DefaultReadinessTimeout is the default time a readiness check waits for
// the store.
const DefaultReadinessTimeout = 2 * time.Second

// ReadinessOptions configures [ReadinessHandler].
type ReadinessOptions struct {
	// Timeout bounds each check (default DefaultReadinessTimeout).
	Timeout time.Duration
	// Logger receives a record per failed check, with the store's error.
	// Default: discard.
	Logger *slog.Logger
}

// Readiness bodies: fixed, never the store's error.
const (
	readyBody       = `{"status":"ready"}` + "\n"
	unavailableBody = `{"status":"unavailable"}` + "\n"
)

// ReadinessHandler is a readiness probe for the host to mount (a load
// balancer's or orchestrator's health check): each request pings p with
// opts.Timeout and answers 200 {"status":"ready"} or 503
// {"status":"unavailable"} (RFC 9110 §15.6.4), with Cache-Control:
// no-store. The body never tells why; the error is logged. It answers any
// method, and nothing to a HEAD but the status.
func ReadinessHandler(p Pinger, opts ReadinessOptions) http.Handler {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultReadinessTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), opts.Timeout)
		defer cancel()
		status, body := http.StatusOK, readyBody
		if err := p.Ping(ctx); err != nil {
			opts.Logger.WarnContext(r.Context(), "readiness check failed: store unavailable", "err", err)
			status, body = http.StatusServiceUnavailable, unavailableBody
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			io.WriteString(w, body)
		}
	})
}
