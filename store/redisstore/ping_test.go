package redisstore_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
	"github.com/dpopkit/dpop/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// TestPing: a live server answers PING; a dead one, or a closed store,
// fails it; the readiness handler says ready or unavailable accordingly,
// without the error in its body.
func TestPing(t *testing.T) {
	live, _ := newStore(t, newClient(t))
	opts := redisOptions(t)
	opts.Addr, opts.MaxRetries = "127.0.0.1:1", -1 // nothing listens there
	dead := redis.NewClient(opts)
	t.Cleanup(func() { dead.Close() })
	down, err := redisstore.New(redisstore.Options{Client: dead, Prefix: freshPrefix(), SkipEvictionCheck: true})
	must(t, err)
	closed, _ := newStore(t, newClient(t))
	closed.Close()

	for _, tc := range []struct {
		name   string
		s      *redisstore.Store
		status int
		body   string
	}{
		{"Live", live, http.StatusOK, `{"status":"ready"}` + "\n"},
		{"Down", down, http.StatusServiceUnavailable, `{"status":"unavailable"}` + "\n"},
		{"Closed", closed, http.StatusServiceUnavailable, `{"status":"unavailable"}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Ping(bg)
			if (err == nil) != (tc.status == http.StatusOK) {
				t.Fatalf("Ping: %v", err)
			}
			if tc.name == "Closed" && !errors.Is(err, store.ErrClosed) {
				t.Errorf("Ping after Close: %v, want store.ErrClosed", err)
			}
			w := httptest.NewRecorder()
			start := time.Now()
			store.ReadinessHandler(tc.s, store.ReadinessOptions{Timeout: time.Second}).ServeHTTP(w, httptest.NewRequest("GET", "/ready", nil))
			if w.Code != tc.status || w.Body.String() != tc.body {
				t.Errorf("readiness: %d %q, want %d %q", w.Code, w.Body, tc.status, tc.body)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("readiness took %v", took)
			}
		})
	}
}
