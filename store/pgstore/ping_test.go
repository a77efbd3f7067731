package pgstore

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// TestPing: Ping is a round trip to the server: it succeeds while the
// database answers, fails within the readiness timeout when it is refused
// or partitioned away (the proxy), and with store.ErrClosed after Close;
// the readiness handler says ready or unavailable accordingly, without the
// error in its body.
func TestPing(t *testing.T) {
	rawURL := databaseURL(t)
	schema := freshSchema(t, testPool(t))
	p, proxied := newProxy(t, rawURL)
	st := openStore(t, newPool(t, proxied, nil), schema, nil)
	ready := store.ReadinessHandler(st, store.ReadinessOptions{Timeout: time.Second})
	probe := func(t *testing.T, status int, body string) {
		t.Helper()
		w := httptest.NewRecorder()
		start := time.Now()
		ready.ServeHTTP(w, httptest.NewRequest("GET", "/ready", nil))
		if w.Code != status || w.Body.String() != body+"\n" {
			t.Errorf("readiness: %d %q, want %d %q", w.Code, w.Body, status, body)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("readiness took %v", took)
		}
	}
	must(t, st.Ping(bg))
	probe(t, http.StatusOK, `{"status":"ready"}`)
	for _, mode := range []proxyMode{refuse, blackhole} {
		must(t, p.set(mode))
		probe(t, http.StatusServiceUnavailable, `{"status":"unavailable"}`)
		must(t, p.set(forward))
		waitFor(t, 10*time.Second, func() bool { return st.Ping(bg) == nil }, "Ping succeeds again")
		probe(t, http.StatusOK, `{"status":"ready"}`)
	}
	st.Close()
	if err := st.Ping(bg); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Ping after Close: %v, want store.ErrClosed", err)
	}
}
