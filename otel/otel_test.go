package dpopotel_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/middleware"
	dpopotel "github.com/dpopkit/dpop/otel"
	"github.com/dpopkit/dpop/store"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// reader is a ManualReader with helpers reading one collection.
type reader struct {
	*sdkmetric.ManualReader
	t testing.TB
}

func newAdapter(t testing.TB, opts dpopotel.Options) (*dpopotel.Adapter, *reader) {
	t.Helper()
	r := &reader{ManualReader: sdkmetric.NewManualReader(), t: t}
	opts.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.ManualReader))
	a, err := dpopotel.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, r
}

// point is a data point: its attributes as "k=v,k=v" (sorted) and its value
// (a sum, a gauge's value or a histogram's count).
type point struct {
	attrs string
	value int64
}

func attrString(s attribute.Set) string {
	var kv []string
	for _, a := range s.ToSlice() {
		kv = append(kv, string(a.Key)+"="+a.Value.Emit())
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// collect returns every metric's points by name.
func (r *reader) collect() map[string][]point {
	r.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		r.t.Fatal(err)
	}
	out := map[string][]point{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != dpopotel.ScopeName {
			r.t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			var ps []point
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				if !d.IsMonotonic || d.Temporality != metricdata.CumulativeTemporality {
					r.t.Errorf("%s: not a cumulative counter", m.Name)
				}
				for _, p := range d.DataPoints {
					ps = append(ps, point{attrString(p.Attributes), p.Value})
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					ps = append(ps, point{attrString(p.Attributes), p.Value})
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					ps = append(ps, point{attrString(p.Attributes), int64(p.Count)})
				}
			default:
				r.t.Fatalf("%s: unexpected data %T", m.Name, m.Data)
			}
			sort.Slice(ps, func(i, j int) bool { return ps[i].attrs < ps[j].attrs })
			out[m.Name] = ps
		}
	}
	return out
}

// value is the value of name's point with exactly attrs (0 when none).
func value(got map[string][]point, name, attrs string) int64 {
	for _, p := range got[name] {
		if p.attrs == attrs {
			return p.value
		}
	}
	return 0
}

func wantPoints(t *testing.T, got map[string][]point, name string, want ...point) {
	t.Helper()
	g := got[name]
	if len(g) != len(want) {
		t.Fatalf("%s: %d points %v, want %v", name, len(g), g, want)
	}
	for i := range want {
		if g[i] != want[i] {
			t.Fatalf("%s: points %v, want %v", name, g, want)
		}
	}
}

// TestEachEventOnce fires each hook once: exactly one increment of one
// instrument, with the event's attributes, and nothing else.
func TestEachEventOnce(t *testing.T) {
	replayErr := &dpop.Error{Code: dpop.CodeInvalidProof, Err: dpop.ErrReplay}
	tests := []struct {
		name     string
		clientID bool
		fire     func(*dpop.Hooks)
		metric   string
		want     point
	}{
		{"proof accepted at the token endpoint", false, func(h *dpop.Hooks) {
			h.ProofChecked(dpop.ProofEvent{Endpoint: dpop.EndpointToken, Accepted: true, Client: "c1"})
		}, dpopotel.MetricProofs, point{"endpoint=token,reason=,result=accepted", 1}},
		{"proof refused at a resource", false, func(h *dpop.Hooks) {
			h.ProofChecked(dpop.ProofEvent{Endpoint: dpop.EndpointResource, Reason: dpop.ReasonReplay, Client: "c1", Err: replayErr})
		}, dpopotel.MetricProofs, point{"endpoint=resource,reason=replay,result=refused", 1}},
		{"proof refused at PAR", false, func(h *dpop.Hooks) {
			h.ProofChecked(dpop.ProofEvent{Endpoint: dpop.EndpointPAR, Reason: dpop.ReasonSignature})
		}, dpopotel.MetricProofs, point{"endpoint=par,reason=signature,result=refused", 1}},
		{"proof with the client id on", true, func(h *dpop.Hooks) {
			h.ProofChecked(dpop.ProofEvent{Endpoint: dpop.EndpointToken, Accepted: true, Client: "c1"})
		}, dpopotel.MetricProofs, point{"client_id=c1,endpoint=token,reason=,result=accepted", 1}},
		{"token issued", false, func(h *dpop.Hooks) {
			h.TokenIssued(dpop.TokenEvent{GrantType: "client_credentials", Format: "opaque", DPoPBound: true})
		}, dpopotel.MetricTokensIssued, point{"grant_type=client_credentials", 1}},
		{"token error", false, func(h *dpop.Hooks) {
			h.TokenError(dpop.TokenErrorEvent{GrantType: "refresh_token", Code: dpop.CodeInvalidGrant, Status: 400})
		}, dpopotel.MetricTokenErrors, point{"error=invalid_grant,grant_type=refresh_token", 1}},
		{"resource refused", false, func(h *dpop.Hooks) {
			h.ResourceRefused(dpop.ResourceEvent{Reason: dpop.ReasonATH, Code: dpop.CodeInvalidProof, Status: 401})
		}, dpopotel.MetricResourceRefusals, point{"error=invalid_dpop_proof,reason=ath", 1}},
		{"store call ok", false, func(h *dpop.Hooks) {
			h.StoreCall(dpop.StoreEvent{Operation: store.OpGetClient, Duration: time.Millisecond})
		}, dpopotel.MetricStoreDuration, point{"operation=get_client,result=ok", 1}},
		{"store call miss", false, func(h *dpop.Hooks) {
			h.StoreCall(dpop.StoreEvent{Operation: store.OpGetAccessToken, Duration: time.Millisecond, Err: store.ErrNotFound})
		}, dpopotel.MetricStoreDuration, point{"operation=get_access_token,result=miss", 1}},
		{"store call failed", false, func(h *dpop.Hooks) {
			h.StoreCall(dpop.StoreEvent{Operation: store.OpReplayInsert, Duration: time.Millisecond, Err: errors.New("connection refused")})
		}, dpopotel.MetricStoreDuration, point{"operation=replay_insert,result=error", 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, r := newAdapter(t, dpopotel.Options{ClientIDAttribute: tc.clientID})
			tc.fire(a.Hooks())
			got := r.collect()
			if len(got) != 1 {
				t.Fatalf("metrics %v, want only %s", got, tc.metric)
			}
			wantPoints(t, got, tc.metric, tc.want)
		})
	}
}

// TestStoreDurationSeconds: the histogram records seconds, in the
// adapter's buckets.
func TestStoreDurationSeconds(t *testing.T) {
	a, r := newAdapter(t, dpopotel.Options{})
	a.Hooks().StoreCall(dpop.StoreEvent{Operation: store.OpPing, Duration: 3 * time.Millisecond})
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	h := rm.ScopeMetrics[0].Metrics[0]
	if h.Unit != "s" {
		t.Fatalf("unit %q", h.Unit)
	}
	p := h.Data.(metricdata.Histogram[float64]).DataPoints[0]
	if p.Count != 1 || p.Sum != 0.003 {
		t.Fatalf("count %d sum %v, want 1 and 0.003", p.Count, p.Sum)
	}
	if len(p.Bounds) != len(dpopotel.StoreDurationBuckets) || p.Bounds[0] != 0.0001 {
		t.Fatalf("bounds %v", p.Bounds)
	}
}

// TestConcurrentCountsExact: events from many goroutines at once are all
// counted.
func TestConcurrentCountsExact(t *testing.T) {
	a, r := newAdapter(t, dpopotel.Options{})
	h := a.Hooks()
	const goroutines, each = 16, 500
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				h.TokenIssued(dpop.TokenEvent{GrantType: "client_credentials"})
				h.ProofChecked(dpop.ProofEvent{Endpoint: dpop.EndpointToken, Accepted: true})
			}
		}()
	}
	wg.Wait()
	got := r.collect()
	wantPoints(t, got, dpopotel.MetricTokensIssued, point{"grant_type=client_credentials", goroutines * each})
	wantPoints(t, got, dpopotel.MetricProofs, point{"endpoint=token,reason=,result=accepted", goroutines * each})
}

// TestReplayCacheGauge: registered only with Options.ReplayCache, it
// reads the cache at each collection; Close unregisters it.
func TestReplayCacheGauge(t *testing.T) {
	_, r := newAdapter(t, dpopotel.Options{})
	if got := r.collect(); len(got) != 0 {
		t.Fatalf("without a replay cache: %v", got)
	}
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, r := newAdapter(t, dpopotel.Options{ReplayCache: m})
	wantPoints(t, r.collect(), dpopotel.MetricReplayCacheEntries, point{"", 0})
	for _, jti := range []string{"a", "b"} {
		if _, err := m.Insert(context.Background(), dpop.NewReplayKey("jkt", jti), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	wantPoints(t, r.collect(), dpopotel.MetricReplayCacheEntries, point{"", 2})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := r.collect()[dpopotel.MetricReplayCacheEntries]; len(got) != 0 {
		t.Fatalf("after Close: %v", got)
	}
}

// kit is an authorization server and a protected resource wired as the
// package documentation shows, on the memory store.
type kit struct {
	mem    *store.Memory
	token  http.Handler
	api    http.Handler
	signer *dpop.Signer
}

const (
	issuer   = "https://as.example.com"
	resource = "https://api.example.com"
	apiPath  = "/hello"
)

func newKit(t testing.TB, hooks *dpop.Hooks, maxReplay int) *kit {
	t.Helper()
	mem, err := store.NewMemory(store.MemoryOptions{MaxReplayEntries: maxReplay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	if err := mem.SaveClient(context.Background(), &store.Client{ID: "demo", SecretHash: store.HashSecret("demo-secret"),
		GrantTypes: []string{handlers.GrantClientCredentials}, Scopes: []string{"read"}, Resources: []string{resource}, DPoPBound: true}); err != nil {
		t.Fatal(err)
	}
	st := store.Instrument(mem, hooks)
	unlimited := dpop.Quota{PerClient: -1, PerGrant: -1}
	as, err := handlers.New(handlers.Config{Issuer: issuer, Store: st, Hooks: hooks, DPoP: dpop.VerifierOptions{Quota: unlimited}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	as.Mount(mux)
	protect, err := middleware.New(middleware.Options{ResourceURL: resource, Audiences: []string{resource},
		Validator: middleware.StoreValidator{Store: st}, DPoP: dpop.VerifierOptions{ReplayCache: st, Quota: unlimited}, Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := dpop.NewSigner(key, dpop.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &kit{mem: mem, token: mux, api: protect(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})), signer: signer}
}

// tokenRequest is a client credentials request with a proof for method.
func (k *kit) tokenRequest(t testing.TB, proofMethod string) *http.Request {
	t.Helper()
	u := issuer + handlers.DefaultPaths.Token
	p, err := k.signer.Proof(proofMethod, u, dpop.ProofOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, u, strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("demo", "demo-secret")
	req.Header.Set("DPoP", p)
	return req
}

func (k *kit) getToken(t testing.TB) string {
	t.Helper()
	w := httptest.NewRecorder()
	k.token.ServeHTTP(w, k.tokenRequest(t, http.MethodPost))
	if w.Code != http.StatusOK {
		t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.AccessToken == "" {
		t.Fatalf("token response %s", w.Body)
	}
	return body.AccessToken
}

// apiRequest is a request of the API with tok and a fresh proof.
func (k *kit) apiRequest(t testing.TB, tok string) *http.Request {
	t.Helper()
	p, err := k.signer.Proof(http.MethodGet, resource+apiPath, dpop.ProofOptions{AccessToken: tok})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, apiPath, nil)
	req.Header.Set("Authorization", "DPoP "+tok)
	req.Header.Set("DPoP", p)
	return req
}

// TestThroughTheKit: the adapter installed in the handlers, the middleware
// and the store wrapper counts a scripted sequence exactly.
func TestThroughTheKit(t *testing.T) {
	a, r := newAdapter(t, dpopotel.Options{})
	k := newKit(t, a.Hooks(), 0)
	// The gauge over the kit's own store.
	_, gr := newAdapter(t, dpopotel.Options{ReplayCache: k.mem})

	var tok string
	for i := 0; i < 3; i++ {
		tok = k.getToken(t)
	}
	// A proof for the wrong method: refused (htm), the token request fails.
	w := httptest.NewRecorder()
	k.token.ServeHTTP(w, k.tokenRequest(t, http.MethodGet))
	if w.Code != http.StatusBadRequest {
		t.Fatalf("htm: %d %s", w.Code, w.Body)
	}
	// One API call, accepted; the same request again is a replay.
	req := k.apiRequest(t, tok)
	for i, want := range []int{http.StatusOK, http.StatusUnauthorized} {
		w := httptest.NewRecorder()
		k.api.ServeHTTP(w, req)
		if w.Code != want {
			t.Fatalf("API call %d: %d %s", i, w.Code, w.Body)
		}
	}

	got := r.collect()
	wantPoints(t, got, dpopotel.MetricTokensIssued, point{"grant_type=client_credentials", 3})
	wantPoints(t, got, dpopotel.MetricTokenErrors, point{"error=invalid_dpop_proof,grant_type=client_credentials", 1})
	wantPoints(t, got, dpopotel.MetricProofs,
		point{"endpoint=resource,reason=,result=accepted", 1},
		point{"endpoint=resource,reason=replay,result=refused", 1},
		point{"endpoint=token,reason=,result=accepted", 3},
		point{"endpoint=token,reason=htm,result=refused", 1})
	wantPoints(t, got, dpopotel.MetricResourceRefusals, point{"error=invalid_dpop_proof,reason=replay", 1})
	// Four accepted proofs took a replay entry, and the replayed one was
	// answered "already there" (not an error) by the fifth insert; the
	// proof refused for its htm never reached the cache.
	if n := value(got, dpopotel.MetricStoreDuration, "operation=replay_insert,result=ok"); n != 5 {
		t.Errorf("replay_insert ok: %d, want 5 (%v)", n, got[dpopotel.MetricStoreDuration])
	}
	if n := value(got, dpopotel.MetricStoreDuration, "operation=save_access_token,result=ok"); n != 3 {
		t.Errorf("save_access_token ok: %d, want 3 (%v)", n, got[dpopotel.MetricStoreDuration])
	}
	for _, p := range got[dpopotel.MetricStoreDuration] {
		if strings.HasSuffix(p.attrs, "result=error") {
			t.Errorf("a store error: %v", p)
		}
	}
	wantPoints(t, gr.collect(), dpopotel.MetricReplayCacheEntries, point{"", int64(k.mem.ReplayEntries())})
	if k.mem.ReplayEntries() < 4 {
		t.Errorf("replay entries %d, want at least 4", k.mem.ReplayEntries())
	}
}

// TestDefaultMeterProvider: without a MeterProvider the adapter uses the
// global one (a no-op here) and its hooks work.
func TestDefaultMeterProvider(t *testing.T) {
	a, err := dpopotel.New(dpopotel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Hooks()
	h.ProofChecked(dpop.ProofEvent{Endpoint: dpop.EndpointToken, Accepted: true})
	h.StoreCall(dpop.StoreEvent{Operation: store.OpPing})
	if h.ProofChecked == nil || h.TokenIssued == nil || h.TokenError == nil || h.ResourceRefused == nil || h.StoreCall == nil {
		t.Fatal("a hook is nil")
	}
	if a.Hooks() == h {
		t.Fatal("Hooks returned the same struct twice")
	}
}
