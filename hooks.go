package dpop

import (
	"context"
	"time"
)

// Hooks are the kit's observation points, in the manner of
// net/http/httptrace: a struct of optional functions that the handlers
// (handlers.Config.Hooks), the resource middleware (middleware.Options.Hooks)
// and the store wrapper (store.Instrument) call as things happen. A nil
// field, or a nil *Hooks, costs nothing: no event is built and nothing is
// called. Hooks are the ground a metrics adapter is built on; the kit
// exports no metrics itself.
//
// Each function is called synchronously on the request's goroutine, from
// many goroutines at once: it must be safe for concurrent use, quick, and
// must not block (count, then return). An event fires exactly once per
// occurrence, so that counters built on them count exactly. The values
// carried are the kit's own (normalised grant types, fixed reasons and
// codes), never raw input from the request. Hooks are read when New is
// called; changing the struct afterwards has no effect.
type Hooks struct {
	// ProofChecked is called once per request whose DPoP proof was
	// checked, or required and missing, with the final outcome: a proof
	// that passes every check of RFC 9449 §4.3 but is then refused by the
	// replay cache (§11.1) or a quota fires one refused event, not two.
	// A request that needs no proof (a Bearer request where allowed)
	// fires none.
	ProofChecked func(ProofEvent)
	// TokenIssued is called once per successful token response (RFC 6749
	// §5.1).
	TokenIssued func(TokenEvent)
	// TokenError is called once per error response of the token endpoint
	// (RFC 6749 §5.2).
	TokenError func(TokenErrorEvent)
	// ResourceRefused is called once per request the resource middleware
	// refuses (RFC 6750 §3, RFC 9449 §7.1).
	ResourceRefused func(ResourceEvent)
	// StoreCall is called after each call to a store wrapped with
	// store.Instrument.
	StoreCall func(StoreEvent)
}

// Endpoint names where a proof was checked: the endpoint label of
// dpop_proofs_total.
type Endpoint string

// Endpoints that check proofs.
const (
	// EndpointToken is the token endpoint (RFC 9449 §5).
	EndpointToken Endpoint = "token"
	// EndpointResource is a protected resource (RFC 9449 §7).
	EndpointResource Endpoint = "resource"
	// EndpointPAR is the pushed authorization request endpoint (RFC 9449
	// §10.1, RFC 9126).
	EndpointPAR Endpoint = "par"
)

// ProofEvent is the outcome of one proof check.
type ProofEvent struct {
	Endpoint Endpoint
	// Accepted is true when the proof passed every check and took its
	// place in the replay cache.
	Accepted bool
	// Reason is ReasonNone when Accepted, the cause of the refusal
	// otherwise ([ReasonOf]).
	Reason RefusalReason
	// Client is the authenticated client the proof is charged to, "" when
	// none is known. It is an identifier the server registered, never the
	// request's claim; keep it out of metric labels (unbounded).
	Client string
	// Err is the refusal (nil when Accepted), for logs.
	Err error
}

// TokenEvent is a successful token response.
type TokenEvent struct {
	// GrantType is one of the grant types the token endpoint supports
	// (authorization_code, client_credentials, refresh_token, RFC 6749
	// §4.1.3, §4.4.2, §6).
	GrantType string
	// Format is the access token format ("opaque" or "jwt",
	// handlers.Config.AccessTokenFormat).
	Format string
	// DPoPBound is true for a DPoP-bound access token (token_type DPoP,
	// RFC 9449 §5), false for a Bearer one.
	DPoPBound bool
}

// TokenErrorEvent is an error response of the token endpoint.
type TokenErrorEvent struct {
	// GrantType is one of the supported grant types, "unsupported" for any
	// other value the client sent, or "" when it sent none (or the request
	// was refused before its body was read). Never the client's raw value.
	GrantType string
	// Code is the OAuth error code answered (RFC 6749 §5.2, RFC 9449 §5).
	Code ErrorCode
	// Status is the HTTP status answered.
	Status int
}

// ResourceEvent is a request refused by the resource middleware.
type ResourceEvent struct {
	// Reason is the proof's refusal reason when the proof was at fault,
	// ReasonNone when the access token or the request was.
	Reason RefusalReason
	// Code is the error code of the challenge (RFC 6750 §3.1, RFC 9449
	// §7.1); "" for a request without credentials (RFC 6750 §3.1 sends
	// none then).
	Code ErrorCode
	// Status is the HTTP status answered.
	Status int
}

// StoreEvent is one call to a store.
type StoreEvent struct {
	// Context is the context the call was made with (the request's), so
	// that a tracer can make the call's span a child of the request's
	// span; store.Instrument always sets it. Do not keep it.
	Context context.Context
	// Operation names the method called: one of the fixed names of the
	// store package (store.OpGetClient…), never a key or a value.
	Operation string
	// Duration is how long the call took.
	Duration time.Duration
	// Err is what the call returned. Some errors are answers, not
	// failures (store.ErrNotFound, ErrConsumed…); a metric's result label
	// tells them apart (store.Outcome).
	Err error
}

// ReplayCacheStats is implemented by a [ReplayCache] that can tell its fill
// level cheaply (the memory cache and the memory store, not the network
// stores): the dpop_replay_cache_entries gauge. Compare with Capacity, when
// the cache also has one.
type ReplayCacheStats interface {
	// ReplayEntries returns the number of entries held, expired ones not
	// yet reclaimed included.
	ReplayEntries() int
}
