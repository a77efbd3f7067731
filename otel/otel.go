// Package dpopotel turns the kit's observation points (dpop.Hooks) into
// OpenTelemetry metrics and, when a TracerProvider is given, spans.
//
// The package is named dpopotel, not otel, so that a host can import it
// next to go.opentelemetry.io/otel without renaming either.
//
// A host builds one Adapter and hands its Hooks to everything it wires:
//
//	a, err := dpopotel.New(dpopotel.Options{MeterProvider: mp})
//	hooks := a.Hooks()
//	st = store.Instrument(st, hooks)           // store call durations
//	as, err := handlers.New(handlers.Config{Store: st, Hooks: hooks, ...})
//	protect, err := middleware.New(middleware.Options{Hooks: hooks, ...})
//
// The instruments are named as an operator sees them on a Prometheus
// /metrics page (the exporter's default translation appends nothing to
// these names):
//
//	dpop_proofs_total{endpoint, result, reason}          counter
//	oauth_tokens_issued_total{grant_type}                counter
//	oauth_token_errors_total{grant_type, error}          counter
//	oauth_resource_refusals_total{reason, error}         counter
//	dpop_store_duration_seconds{operation, result}       histogram, seconds
//	dpop_replay_cache_entries                            gauge (Options.ReplayCache)
//
// Every attribute value is one of the kit's closed sets (endpoints, refusal
// reasons, normalised grant types, error codes, store operations and
// outcomes), so that the number of series is bounded; the client id, which
// is not, is added to dpop_proofs_total only when Options.ClientIDAttribute
// asks for it.
package dpopotel

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/dpopkit/dpop/otel"

// Metric names, as exposed.
const (
	MetricProofs             = "dpop_proofs_total"
	MetricTokensIssued       = "oauth_tokens_issued_total"
	MetricTokenErrors        = "oauth_token_errors_total"
	MetricResourceRefusals   = "oauth_resource_refusals_total"
	MetricStoreDuration      = "dpop_store_duration_seconds"
	MetricReplayCacheEntries = "dpop_replay_cache_entries"
)

// Attribute keys.
const (
	AttrEndpoint  = "endpoint"
	AttrResult    = "result"
	AttrReason    = "reason"
	AttrGrantType = "grant_type"
	AttrError     = "error"
	AttrOperation = "operation"
	AttrClientID  = "client_id"
)

// Values of the result attribute of dpop_proofs_total.
const (
	ResultAccepted = "accepted"
	ResultRefused  = "refused"
)

// StoreDurationBuckets are the bucket boundaries of
// dpop_store_duration_seconds, in seconds: 100 µs (a memory store) to 2.5 s
// (beyond the network stores' timeouts). The SDK's default boundaries are
// meant for milliseconds and would put every store call in the first
// bucket.
var StoreDurationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// Options configures [New].
type Options struct {
	// MeterProvider makes the meter of the instruments. Default:
	// otel.GetMeterProvider() (a no-op until the host sets a global one).
	MeterProvider metric.MeterProvider
	// TracerProvider, when set, makes a span per store call and the spans
	// of WrapHandler. Nil: no spans.
	TracerProvider trace.TracerProvider
	// ReplayCache, when set, is observed by the dpop_replay_cache_entries
	// gauge (the memory store or dpop.MemoryReplayCache; the network
	// stores cannot count their entries cheaply and do not implement
	// dpop.ReplayCacheStats). Nil: the gauge is not registered.
	ReplayCache dpop.ReplayCacheStats
	// ClientIDAttribute adds the client_id attribute to dpop_proofs_total.
	// Off by default: it makes a series per client (unbounded
	// cardinality); turn it on only with few, known clients.
	ClientIDAttribute bool
}

// Adapter holds the instruments. It is safe for concurrent use.
type Adapter struct {
	proofs, issued, tokenErrors, refusals metric.Int64Counter
	storeDuration                         metric.Float64Histogram
	tracer                                trace.Tracer // nil: no spans
	clientID                              bool
	gauge                                 metric.Registration
	hooks                                 dpop.Hooks

	// Attribute sets, built once per combination of values: every value
	// comes from a closed set of the kit, so the caches stay small.
	proofAttrs   attrCache[proofKey]
	issuedAttrs  attrCache[string]
	errorAttrs   attrCache[errorKey]
	refusalAttrs attrCache[refusalKey]
	storeAttrs   attrCache[storeKey]
}

// New makes the instruments on opts.MeterProvider's meter.
func New(opts Options) (*Adapter, error) {
	mp := opts.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(ScopeName)
	a := &Adapter{clientID: opts.ClientIDAttribute}
	var err error
	if a.proofs, err = m.Int64Counter(MetricProofs,
		metric.WithDescription("DPoP proofs checked (RFC 9449 §4.3), by endpoint, result and refusal reason."),
		metric.WithUnit("{proof}")); err != nil {
		return nil, err
	}
	if a.issued, err = m.Int64Counter(MetricTokensIssued,
		metric.WithDescription("Successful token responses (RFC 6749 §5.1), by grant type."),
		metric.WithUnit("{token}")); err != nil {
		return nil, err
	}
	if a.tokenErrors, err = m.Int64Counter(MetricTokenErrors,
		metric.WithDescription("Error responses of the token endpoint (RFC 6749 §5.2), by grant type and error code."),
		metric.WithUnit("{response}")); err != nil {
		return nil, err
	}
	if a.refusals, err = m.Int64Counter(MetricResourceRefusals,
		metric.WithDescription("Requests refused by the resource middleware (RFC 6750 §3, RFC 9449 §7.1), by proof refusal reason and error code."),
		metric.WithUnit("{request}")); err != nil {
		return nil, err
	}
	if a.storeDuration, err = m.Float64Histogram(MetricStoreDuration,
		metric.WithDescription("Duration of store calls, by operation and outcome (ok, miss, full, canceled, error)."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(StoreDurationBuckets...)); err != nil {
		return nil, err
	}
	if rc := opts.ReplayCache; rc != nil {
		g, err := m.Int64ObservableGauge(MetricReplayCacheEntries,
			metric.WithDescription("Entries held by the DPoP replay cache (expired ones not yet reclaimed included)."),
			metric.WithUnit("{entry}"))
		if err != nil {
			return nil, err
		}
		if a.gauge, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			o.ObserveInt64(g, int64(rc.ReplayEntries()))
			return nil
		}, g); err != nil {
			return nil, err
		}
	}
	if opts.TracerProvider != nil {
		a.tracer = opts.TracerProvider.Tracer(ScopeName)
	}
	a.hooks = dpop.Hooks{
		ProofChecked:    a.proofChecked,
		TokenIssued:     a.tokenIssued,
		TokenError:      a.tokenError,
		ResourceRefused: a.resourceRefused,
		StoreCall:       a.storeCall,
	}
	return a, nil
}

// Hooks returns the hooks to hand to handlers.Config.Hooks,
// middleware.Options.Hooks and store.Instrument: a new struct each call,
// whose functions feed this adapter.
func (a *Adapter) Hooks() *dpop.Hooks {
	h := a.hooks
	return &h
}

// Close unregisters the replay cache gauge's callback (nothing else holds
// resources). The counters stay usable.
func (a *Adapter) Close() error {
	if a.gauge == nil {
		return nil
	}
	err := a.gauge.Unregister()
	a.gauge = nil
	return err
}

// attrOpts are the options of a measurement with one attribute set, as
// slices ready to pass (a slice built at each call would be allocated).
type attrOpts struct {
	add    []metric.AddOption
	record []metric.RecordOption
}

// attrCache maps a combination of attribute values to its measurement
// options, built once. Reads take no lock and allocate nothing (the map is
// replaced, never changed, when a combination is added).
type attrCache[K comparable] struct {
	m  atomic.Pointer[map[K]*attrOpts]
	mu sync.Mutex
}

func (c *attrCache[K]) get(key K, build func() attribute.Set) *attrOpts {
	if m := c.m.Load(); m != nil {
		if opt, ok := (*m)[key]; ok {
			return opt
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if opt, ok := (*old)[key]; ok {
			return opt
		}
	}
	next := make(map[K]*attrOpts, 1)
	if old != nil {
		maps.Copy(next, *old)
	}
	o := metric.WithAttributeSet(build())
	opt := &attrOpts{add: []metric.AddOption{o}, record: []metric.RecordOption{o}}
	next[key] = opt
	c.m.Store(&next)
	return opt
}

type proofKey struct {
	endpoint dpop.Endpoint
	reason   dpop.RefusalReason
	accepted bool
}

func (a *Adapter) proofChecked(e dpop.ProofEvent) {
	k := proofKey{e.Endpoint, e.Reason, e.Accepted}
	if e.Accepted {
		k.reason = dpop.ReasonNone
	}
	build := func() attribute.Set {
		result := ResultRefused
		if k.accepted {
			result = ResultAccepted
		}
		return attribute.NewSet(
			attribute.String(AttrEndpoint, string(k.endpoint)),
			attribute.String(AttrResult, result),
			attribute.String(AttrReason, string(k.reason)))
	}
	if !a.clientID {
		a.proofs.Add(context.Background(), 1, a.proofAttrs.get(k, build).add...)
		return
	}
	// Per client: not cached (the set of clients is the host's, unbounded
	// for the adapter).
	set := build()
	kv := set.ToSlice()
	a.proofs.Add(context.Background(), 1, metric.WithAttributeSet(attribute.NewSet(append(kv, attribute.String(AttrClientID, e.Client))...)))
}

func (a *Adapter) tokenIssued(e dpop.TokenEvent) {
	a.issued.Add(context.Background(), 1, a.issuedAttrs.get(e.GrantType, func() attribute.Set {
		return attribute.NewSet(attribute.String(AttrGrantType, e.GrantType))
	}).add...)
}

type errorKey struct {
	grant string
	code  dpop.ErrorCode
}

func (a *Adapter) tokenError(e dpop.TokenErrorEvent) {
	k := errorKey{e.GrantType, e.Code}
	a.tokenErrors.Add(context.Background(), 1, a.errorAttrs.get(k, func() attribute.Set {
		return attribute.NewSet(attribute.String(AttrGrantType, k.grant), attribute.String(AttrError, string(k.code)))
	}).add...)
}

type refusalKey struct {
	reason dpop.RefusalReason
	code   dpop.ErrorCode
}

func (a *Adapter) resourceRefused(e dpop.ResourceEvent) {
	k := refusalKey{e.Reason, e.Code}
	a.refusals.Add(context.Background(), 1, a.refusalAttrs.get(k, func() attribute.Set {
		return attribute.NewSet(attribute.String(AttrReason, string(k.reason)), attribute.String(AttrError, string(k.code)))
	}).add...)
}

type storeKey struct{ op, outcome string }

func (a *Adapter) storeCall(e dpop.StoreEvent) {
	k := storeKey{e.Operation, store.Outcome(e.Err)}
	a.storeDuration.Record(context.Background(), e.Duration.Seconds(), a.storeAttrs.get(k, func() attribute.Set {
		return attribute.NewSet(attribute.String(AttrOperation, k.op), attribute.String(AttrResult, k.outcome))
	}).record...)
	if a.tracer == nil {
		return
	}
	// The event comes after the call: the span gets the call's own start
	// and end times, under the request's span when the call's context
	// carries one.
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	end := time.Now()
	_, span := a.tracer.Start(ctx, "dpop.store "+e.Operation,
		trace.WithTimestamp(end.Add(-e.Duration)),
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String(AttrOperation, k.op), attribute.String(AttrResult, k.outcome)))
	if k.outcome == store.OutcomeError {
		span.SetStatus(codes.Error, "store call failed")
		span.RecordError(e.Err, trace.WithTimestamp(end))
	}
	span.End(trace.WithTimestamp(end))
}
