package store_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// pingFunc is a Pinger.
type pingFunc func(ctx context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }

// TestReadinessHandler: 200 ready while the store answers, 503 unavailable
// when it fails or does not answer within the timeout, with a fixed body
// (the error is logged, never sent) and no caching.
func TestReadinessHandler(t *testing.T) {
	secret := errors.New("dial tcp 10.0.0.7:6379: connection refused")
	closed := memory(t)
	closed.Close()
	for _, tc := range []struct {
		name    string
		p       store.Pinger
		method  string
		status  int
		body    string
		timeout time.Duration
	}{
		{"Memory", memory(t), "GET", 200, `{"status":"ready"}` + "\n", 0},
		{"MemoryHEAD", memory(t), "HEAD", 200, "", 0},
		{"Closed", closed, "GET", 503, `{"status":"unavailable"}` + "\n", 0},
		{"Failing", pingFunc(func(context.Context) error { return secret }), "GET", 503, `{"status":"unavailable"}` + "\n", 0},
		{"Slow", pingFunc(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }), "GET", 503, `{"status":"unavailable"}` + "\n", 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := store.ReadinessHandler(tc.p, store.ReadinessOptions{Timeout: tc.timeout, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(tc.method, "/ready", nil))
			if w.Code != tc.status || w.Body.String() != tc.body {
				t.Errorf("%d %q, want %d %q", w.Code, w.Body, tc.status, tc.body)
			}
			if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", w.Header())
			}
			if failed := tc.status != http.StatusOK; failed != strings.Contains(logs.String(), "readiness check failed") {
				t.Errorf("log %q", logs.String())
			}
			if tc.name == "Failing" && !strings.Contains(logs.String(), "connection refused") {
				t.Errorf("the error is not logged: %q", logs.String())
			}
		})
	}
}

// TestReadinessDefaultTimeout: a zero timeout is DefaultReadinessTimeout.
func TestReadinessDefaultTimeout(t *testing.T) {
	var got time.Duration
	h := store.ReadinessHandler(pingFunc(func(ctx context.Context) error {
		d, _ := ctx.Deadline()
		got = time.Until(d)
		return nil
	}), store.ReadinessOptions{})
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/ready", nil))
	if got <= store.DefaultReadinessTimeout-time.Second || got > store.DefaultReadinessTimeout {
		t.Errorf("deadline in %v, want about %v", got, store.DefaultReadinessTimeout)
	}
}
