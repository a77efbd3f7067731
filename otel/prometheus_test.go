package dpopotel_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	dpopotel "github.com/dpopkit/dpop/otel"
	"github.com/dpopkit/dpop/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// scrape exposes the adapter's metrics through the OpenTelemetry
// Prometheus exporter (with opts) on a registry of its own, fires events
// and returns the text exposition.
func scrape(t *testing.T, opts ...otelprom.Option) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(append([]otelprom.Option{otelprom.WithRegisterer(reg)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	a, err := dpopotel.New(dpopotel.Options{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)), ReplayCache: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h := a.Hooks()
	for i := 0; i < 3; i++ {
		h.TokenIssued(dpop.TokenEvent{GrantType: "client_credentials"})
	}
	h.TokenError(dpop.TokenErrorEvent{GrantType: "client_credentials", Code: dpop.CodeInvalidProof})
	h.ProofChecked(dpop.ProofEvent{Endpoint: dpop.EndpointToken, Reason: dpop.ReasonHTM})
	h.ResourceRefused(dpop.ResourceEvent{Code: dpop.CodeInvalidToken})
	h.StoreCall(dpop.StoreEvent{Operation: store.OpGetClient, Duration: 300 * time.Microsecond})
	w := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

// TestPrometheusNames: the names an operator sees at /metrics are the
// instruments' names, under the exporter's default translation and
// without any (the exporter appends neither _total nor a unit again).
func TestPrometheusNames(t *testing.T) {
	want := []string{
		"# TYPE dpop_proofs_total counter",
		"# TYPE oauth_tokens_issued_total counter",
		"# TYPE oauth_token_errors_total counter",
		"# TYPE oauth_resource_refusals_total counter",
		"# TYPE dpop_store_duration_seconds histogram",
		"# TYPE dpop_replay_cache_entries gauge",
	}
	for _, tc := range []struct {
		name string
		opts []otelprom.Option
	}{
		{"default", nil},
		{"without scope info", []otelprom.Option{otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := scrape(t, tc.opts...)
			var types []string
			for _, line := range strings.Split(text, "\n") {
				if strings.HasPrefix(line, "# TYPE ") && !strings.HasPrefix(line, "# TYPE target_info ") {
					types = append(types, line)
				}
			}
			for _, w := range want {
				if !strings.Contains(text, w+"\n") {
					t.Errorf("no %q in the exposition", w)
				}
			}
			if len(types) != len(want) {
				t.Errorf("types %q, want %q", types, want)
			}
			if tc.opts == nil {
				return
			}
			for _, line := range []string{
				`oauth_tokens_issued_total{grant_type="client_credentials"} 3`,
				`oauth_token_errors_total{error="invalid_dpop_proof",grant_type="client_credentials"} 1`,
				`dpop_proofs_total{endpoint="token",reason="htm",result="refused"} 1`,
				`oauth_resource_refusals_total{error="invalid_token",reason=""} 1`,
				`dpop_store_duration_seconds_bucket{operation="get_client",result="ok",le="0.00025"} 0`,
				`dpop_store_duration_seconds_bucket{operation="get_client",result="ok",le="0.0005"} 1`,
				`dpop_store_duration_seconds_count{operation="get_client",result="ok"} 1`,
				`dpop_replay_cache_entries 0`,
			} {
				if !strings.Contains(text, "\n"+line+"\n") {
					t.Errorf("no line %s in:\n%s", line, text)
				}
			}
		})
	}
}
