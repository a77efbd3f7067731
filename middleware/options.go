package middleware

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dpopkit/dpop"
)

// Defaults of the options of this package: one rule for all of them, as in
// the rest of the kit: a zero field takes the default, a negative size or
// duration is refused.
const (
	// DefaultLeeway is the default JWTOptions.Leeway, the allowance for
	// clock skew on exp, nbf and iat (RFC 7519 §4.1.4–4.1.6).
	DefaultLeeway = 30 * time.Second
	// DefaultCacheSize is the default JWTOptions.CacheSize and
	// IntrospectionOptions.CacheSize: validated tokens (or introspection
	// answers) kept.
	DefaultCacheSize = 10_000
	// DefaultCacheTTL is the default JWTOptions.CacheTTL and
	// IntrospectionOptions.CacheTTL: how long a validated token is trusted
	// without checking it again.
	DefaultCacheTTL = time.Minute
	// DefaultHTTPTimeout is the timeout of the default HTTP clients, for
	// the JWKS (RFC 7517 §5) and for introspection (RFC 7662 §2).
	DefaultHTTPTimeout = 10 * time.Second
)

// Options configures [New]. Zero fields take the documented defaults; New
// validates the whole.
type Options struct {
	// ResourceURL is the public base URL of the API, as clients address it
	// ("https://api.example.com"). Required. The expected htu of a proof
	// is this URL followed by the request path, never built from the Host
	// or X-Forwarded-* headers.
	ResourceURL string
	// Audiences are the identifiers this API answers to: its resource
	// indicators (RFC 8707 §2), the values an access token's audience
	// (aud, RFC 9068 §4, RFC 7519 §4.1.3) may name it by. A token is
	// accepted only if its audience contains at least one of them,
	// whichever TokenValidator read it; a token without an audience is
	// refused. Entries must be non-empty and are compared exactly, as
	// strings: no case folding, no trailing-slash or default-port
	// equivalence. Default: ResourceURL alone, exactly as given.
	Audiences []string
	// DPoP configures proof checking; BaseURL is set to ResourceURL. When
	// ReplayCache is nil the dpop default (a bounded in-memory cache) is
	// used: give the shared store's cache when several instances serve the
	// API.
	DPoP dpop.VerifierOptions
	// Validator checks access tokens. Required; a StoreValidator needs
	// its Store.
	Validator TokenValidator
	// Realm, when set, is sent in every challenge (RFC 6750 §3).
	Realm string
	// AllowBearer accepts unbound Bearer tokens (RFC 6750) beside DPoP.
	// Default false: only DPoP-bound tokens pass. A DPoP-bound token
	// presented as Bearer is refused either way (RFC 9449 §7.2).
	AllowBearer bool
	// ErrorHandler renders refusals. Default WriteError.
	ErrorHandler ErrorHandler
	// Logger receives one record per refusal. Default: discard.
	Logger *slog.Logger
	// Hooks, when set, observe the middleware: ProofChecked (with
	// dpop.EndpointResource) once per request whose proof was checked, and
	// ResourceRefused once per refused request. New copies the struct.
	// Store calls are observed by wrapping the store before it is given
	// to the validator and as DPoP.ReplayCache: store.Instrument(st, hooks).
	Hooks *dpop.Hooks
}

// normalize validates the options and fills in the defaults, on a copy.
func (o Options) normalize() (Options, error) {
	switch {
	case o.ResourceURL == "":
		return o, errors.New("middleware: Options.ResourceURL is required")
	case o.Validator == nil:
		return o, errors.New("middleware: Options.Validator is required")
	case strings.ContainsAny(o.Realm, "\"\\\r\n"):
		return o, errors.New("middleware: Realm must not contain quotes, backslashes or line breaks")
	}
	if slices.Contains(o.Audiences, "") {
		return o, errors.New("middleware: Options.Audiences must not hold an empty entry")
	}
	if len(o.Audiences) == 0 {
		o.Audiences = []string{o.ResourceURL}
	} else {
		// A copy: the caller's slice may change after New.
		o.Audiences = slices.Clone(o.Audiences)
	}
	if err := validatorUsable(o.Validator); err != nil {
		return o, err
	}
	if o.ErrorHandler == nil {
		o.ErrorHandler = WriteError
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Hooks != nil {
		h := *o.Hooks // the caller's struct may change after New
		o.Hooks = &h
	}
	return o, nil
}

// validatorUsable refuses the validators of this package that would fail
// every request: a StoreValidator without a store (a nil-pointer panic at
// the first request otherwise), and nil pointers to the others.
func validatorUsable(v TokenValidator) error {
	switch v := v.(type) {
	case StoreValidator:
		if v.Store == nil {
			return errors.New("middleware: Options.Validator is a StoreValidator without a Store")
		}
	case *StoreValidator:
		if v == nil || v.Store == nil {
			return errors.New("middleware: Options.Validator is a StoreValidator without a Store")
		}
	case *JWTValidator:
		if v == nil {
			return errors.New("middleware: Options.Validator is a nil *JWTValidator")
		}
	case *IntrospectionValidator:
		if v == nil {
			return errors.New("middleware: Options.Validator is a nil *IntrospectionValidator")
		}
	}
	return nil
}

// serverURLAllowed reports whether u is an absolute https URL, or http on a
// loopback address (for development), without user info or fragment: the
// rule for JWTOptions.JWKSURL and IntrospectionOptions.Endpoint.
func serverURLAllowed(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" || p.User != nil || p.Fragment != "" || strings.Contains(u, "#") {
		return false
	}
	switch p.Scheme {
	case "https":
		return true
	case "http":
		host := p.Hostname()
		ip := net.ParseIP(host)
		return host == "localhost" || (ip != nil && ip.IsLoopback())
	}
	return false
}

// secureRedirectsOnly follows at most 5 redirects, and only to URLs
// serverURLAllowed accepts, so that https cannot be downgraded.
func secureRedirectsOnly(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	if !serverURLAllowed(req.URL.String()) {
		return errors.New("redirect to an insecure URL")
	}
	return nil
}
