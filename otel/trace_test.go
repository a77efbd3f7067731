package dpopotel_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	dpopotel "github.com/dpopkit/dpop/otel"
	"github.com/dpopkit/dpop/store"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func tracing(t *testing.T) (*dpopotel.Adapter, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	a, _ := newAdapter(t, dpopotel.Options{TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))})
	return a, rec
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// TestStoreCallSpans: one span per store call, ending when the event
// arrives and starting its duration earlier; a failed call is an error.
func TestStoreCallSpans(t *testing.T) {
	a, rec := tracing(t)
	h := a.Hooks()
	before := time.Now()
	h.StoreCall(dpop.StoreEvent{Operation: store.OpGetClient, Duration: 40 * time.Millisecond})
	h.StoreCall(dpop.StoreEvent{Operation: store.OpReplayInsert, Duration: time.Millisecond, Err: errors.New("dial tcp: refused")})
	h.StoreCall(dpop.StoreEvent{Operation: store.OpGetCode, Duration: time.Millisecond, Err: store.ErrNotFound})
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	s := spans[0]
	if s.Name() != "dpop.store get_client" || s.SpanKind() != trace.SpanKindClient {
		t.Fatalf("span %q kind %v", s.Name(), s.SpanKind())
	}
	if d := s.EndTime().Sub(s.StartTime()); d != 40*time.Millisecond {
		t.Fatalf("span lasts %v, want 40ms", d)
	}
	if s.EndTime().Before(before) || s.EndTime().After(time.Now()) {
		t.Fatalf("span ends at %v, not during the call", s.EndTime())
	}
	if attr(s, "operation").AsString() != "get_client" || attr(s, "result").AsString() != "ok" || s.Status().Code != codes.Unset {
		t.Fatalf("span attributes %v status %v", s.Attributes(), s.Status())
	}
	if s := spans[1]; s.Status().Code != codes.Error || attr(s, "result").AsString() != "error" || len(s.Events()) != 1 {
		t.Fatalf("failed call: status %v attributes %v events %v", s.Status(), s.Attributes(), s.Events())
	}
	if s := spans[2]; s.Status().Code != codes.Unset || attr(s, "result").AsString() != "miss" {
		t.Fatalf("a miss is an answer, not an error: status %v attributes %v", s.Status(), s.Attributes())
	}
}

// TestWrapHandler: a server span per request, parent of the spans made
// below it, with the status; h itself without a TracerProvider.
func TestWrapHandler(t *testing.T) {
	a, rec := tracing(t)
	var inner trace.SpanContext
	h := a.WrapHandler("oauth.token", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner = trace.SpanContextFromContext(r.Context())
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	for _, path := range []string{"/ok", "/fail"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", path, nil))
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	ok, fail := spans[0], spans[1]
	if ok.Name() != "oauth.token" || ok.SpanKind() != trace.SpanKindServer || attr(ok, "http.response.status_code").AsInt64() != 200 ||
		attr(ok, "http.request.method").AsString() != "POST" || ok.Status().Code != codes.Unset {
		t.Fatalf("span %q %v %v", ok.Name(), ok.Attributes(), ok.Status())
	}
	if attr(fail, "http.response.status_code").AsInt64() != 503 || fail.Status().Code != codes.Error {
		t.Fatalf("5xx span %v %v", fail.Attributes(), fail.Status())
	}
	if !inner.Equal(fail.SpanContext()) {
		t.Fatal("the handler's context does not carry the span")
	}

	plain, _ := newAdapter(t, dpopotel.Options{})
	hf := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	if got := plain.WrapHandler("x", hf); got == nil || func() bool { _, ok := got.(http.HandlerFunc); return !ok }() {
		t.Fatalf("without a tracer: %T, want the handler itself", got)
	}
}

// TestStoreCallSpanParent: a store call made under a request's span (through
// store.Instrument, which passes the call's context on) is that span's
// child, so a slow token request can be tied to a slow store.
func TestStoreCallSpanParent(t *testing.T) {
	a, rec := tracing(t)
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	st := store.Instrument(m, a.Hooks())
	h := a.WrapHandler("oauth.token", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st.GetClient(r.Context(), "nobody")
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/token", nil))
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the store call and the request", len(spans))
	}
	call, req := spans[0], spans[1]
	if call.Name() != "dpop.store get_client" || call.Parent().SpanID() != req.SpanContext().SpanID() || call.SpanContext().TraceID() != req.SpanContext().TraceID() {
		t.Fatalf("store span %q parent %v, want the request's span %v", call.Name(), call.Parent().SpanID(), req.SpanContext().SpanID())
	}
}
