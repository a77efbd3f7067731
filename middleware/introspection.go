package middleware

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Limits and defaults of IntrospectionValidator.
const (
	// introspectionMaxBody bounds the introspection response body.
	introspectionMaxBody = 64 << 10
	// introspectionMaxToken bounds the tokens sent for introspection.
	introspectionMaxToken = 16 << 10
	// introspectionInactiveTTL is how long an inactive answer is kept.
	introspectionInactiveTTL = 5 * time.Second
)

// IntrospectionOptions configures [NewIntrospectionValidator], a client of
// an RFC 7662 token introspection endpoint. Zero fields take the documented
// defaults.
type IntrospectionOptions struct {
	// Endpoint is the introspection endpoint URL (RFC 7662 §2,
	// introspection_endpoint of RFC 8414 §2): https, or http on a loopback
	// address. Required.
	Endpoint string
	// ClientID and ClientSecret are the resource server's credentials at
	// the authorization server, sent with client_secret_basic (RFC 7662
	// §2.1, RFC 6749 §2.3.1: each form-urlencoded, then HTTP Basic).
	// Required.
	ClientID, ClientSecret string
	// HTTPClient makes the introspection requests (RFC 7662 §2.1).
	// Default: a client with a 10 second timeout that does not follow
	// redirects (a redirect is an error, never a reason to send the
	// credentials and the token elsewhere; RFC 7662 §4).
	HTTPClient *http.Client
	// CacheSize bounds the cache of introspection results (RFC 7662 §4):
	// at most CacheSize active results and, separately, at most CacheSize
	// inactive ones, least recently used evicted first, so that a flood
	// of bogus tokens cannot push out the results of good ones. Default
	// DefaultCacheSize (10,000); negative values are refused.
	CacheSize int
	// CacheTTL is the longest time an active result is reused without
	// asking again; never past the token's exp. A token revoked at the
	// authorization server may thus be accepted for up to CacheTTL more
	// (RFC 7662 §4 weighs this). Default DefaultCacheTTL (1 minute); negative values are
	// refused. Inactive results are kept 5 seconds (or CacheTTL, if
	// shorter), so that a client repeating a dead token does not make every
	// request a call to the authorization server.
	CacheTTL time.Duration
	// Now is the clock for exp (RFC 7662 §2.2) and the cache. Default
	// time.Now.
	Now func() time.Time
}

// IntrospectionValidator is a [TokenValidator] that asks the authorization
// server about each token (RFC 7662) and caches the answers. Like every
// validator it reports the token's aud in Principal.Audience and leaves the
// audience check to the middleware (Options.Audiences); a caller that uses
// Validate outside the middleware must check it itself.
//
// The request is a POST of token and token_type_hint=access_token,
// application/x-www-form-urlencoded, authenticated with
// client_secret_basic, asking for application/json (RFC 7662 §2.1). A
// token is accepted only when the answer is a 200 application/json object
// of at most 64 KiB (RFC 7662 §2.2) in which active is the JSON value true,
// exp is a number in the future, token_type is "DPoP" or "Bearer"
// (RFC 9449 §6.2; any other or none is refused, which keeps refresh tokens
// out: RFC 7662 servers describe them too), and sub, client_id, scope, aud
// (a string or an array of strings, RFC 7662 §2.2) and cnf have their JSON
// types. A "DPoP" token must carry cnf.jkt and a "Bearer" one must not;
// cnf holding anything but jkt is refused (RFC 9449 §6.2, RFC 7800 §3.1).
// Member names are matched exactly. The Principal's Audience is aud, which
// the middleware checks against Options.Audiences (the validator does not),
// and its Claims are the members that are not registered (the host's
// claims, as the authorization server added them).
//
// Any other answer that says active is not true is a refusal
// (ErrInvalidToken). An unreachable server, a non-200 status (a 401 for
// wrong credentials included), another content type, a body too large or
// not JSON wrap ErrValidatorUnavailable: the middleware answers 503, never
// lets the request through. Results are cached under the SHA-256 hash of
// the token, never the token; see [IntrospectionOptions]. Concurrent
// requests for an uncached token may each ask the server. It is safe for
// concurrent use.
type IntrospectionValidator struct {
	endpoint string
	// basicUser and basicPass are the form-urlencoded credentials.
	basicUser, basicPass string
	client               *http.Client
	ttl                  time.Duration
	now                  func() time.Time
	active               *lru.Cache[[sha256.Size]byte, introspectionResult]
	inactive             *lru.Cache[[sha256.Size]byte, time.Time]
}

// introspectionResult is a cached active answer.
type introspectionResult struct {
	principal Principal
	until     time.Time
}

// normalize validates the options and fills in the defaults, on a copy.
func (o IntrospectionOptions) normalize() (IntrospectionOptions, error) {
	switch {
	case !serverURLAllowed(o.Endpoint):
		return o, errors.New("middleware: IntrospectionOptions.Endpoint must be an https URL (http only on a loopback address)")
	case o.ClientID == "" || o.ClientSecret == "":
		return o, errors.New("middleware: IntrospectionOptions.ClientID and ClientSecret are required")
	case o.CacheSize < 0 || o.CacheTTL < 0:
		return o, errors.New("middleware: IntrospectionOptions.CacheSize and CacheTTL must not be negative")
	}
	o.CacheSize = cmp.Or(o.CacheSize, DefaultCacheSize)
	o.CacheTTL = cmp.Or(o.CacheTTL, DefaultCacheTTL)
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{
			Timeout: DefaultHTTPTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// NewIntrospectionValidator validates opts and returns a validator that
// uses the RFC 7662 introspection endpoint they name.
func NewIntrospectionValidator(opts IntrospectionOptions) (*IntrospectionValidator, error) {
	opts, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	active, err := lru.New[[sha256.Size]byte, introspectionResult](opts.CacheSize)
	if err != nil {
		return nil, fmt.Errorf("middleware: introspection cache: %w", err)
	}
	inactive, err := lru.New[[sha256.Size]byte, time.Time](opts.CacheSize)
	if err != nil {
		return nil, fmt.Errorf("middleware: introspection cache: %w", err)
	}
	return &IntrospectionValidator{
		endpoint:  opts.Endpoint,
		basicUser: url.QueryEscape(opts.ClientID), basicPass: url.QueryEscape(opts.ClientSecret),
		client: opts.HTTPClient, ttl: opts.CacheTTL, now: opts.Now,
		active: active, inactive: inactive,
	}, nil
}

// Validate implements [TokenValidator] with token introspection (RFC 7662
// §2); see [IntrospectionValidator].
func (v *IntrospectionValidator) Validate(ctx context.Context, token string) (*Principal, error) {
	if v == nil {
		return nil, introspectionUnavailable("no validator", nil)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if token == "" || len(token) > introspectionMaxToken {
		return nil, introspectionInvalid(ErrTokenMalformed, "size out of bounds")
	}
	key := sha256.Sum256([]byte(token))
	now := v.now()
	if r, ok := v.active.Get(key); ok {
		if now.Before(r.until) {
			p := r.principal
			p.detach()
			return &p, nil
		}
		v.active.Remove(key)
	}
	if until, ok := v.inactive.Get(key); ok {
		if now.Before(until) {
			return nil, introspectionInvalid(ErrTokenInactive, "inactive")
		}
		v.inactive.Remove(key)
	}
	m, err := v.introspect(ctx, token)
	if err != nil {
		return nil, err
	}
	p, inactive, err := v.principal(m, now)
	if err != nil {
		if inactive {
			v.inactive.Add(key, now.Add(min(v.ttl, introspectionInactiveTTL)))
		}
		return nil, err
	}
	until := now.Add(v.ttl)
	if p.ExpiresAt.Before(until) {
		until = p.ExpiresAt
	}
	if now.Before(until) {
		c := *p
		c.detach()
		v.active.Add(key, introspectionResult{principal: c, until: until})
	}
	return p, nil
}

// introspect makes the request of RFC 7662 §2.1 and returns the members of
// the JSON object answered (RFC 7662 §2.2).
func (v *IntrospectionValidator) introspect(ctx context.Context, token string) (jose.Object, error) {
	body := url.Values{"token": {token}, "token_type_hint": {"access_token"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.endpoint, strings.NewReader(body))
	if err != nil {
		return nil, introspectionUnavailable("building the request", nil)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(v.basicUser, v.basicPass)
	res, err := v.client.Do(req)
	if err != nil {
		return nil, introspectionUnavailable("request failed", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, introspectionUnavailable(fmt.Sprintf("endpoint answered %d", res.StatusCode), nil)
	}
	if mt, _, err := mime.ParseMediaType(res.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, introspectionUnavailable("answer is not application/json", nil)
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, introspectionMaxBody+1))
	if err != nil {
		return nil, introspectionUnavailable("reading the answer", err)
	}
	if len(data) > introspectionMaxBody {
		return nil, introspectionUnavailable("answer too large", nil)
	}
	m, err := jose.ParseObject(data)
	var dup *jose.MemberError
	switch {
	case errors.As(err, &dup):
		// A member given twice: refused like a mistyped one.
		return nil, introspectionInvalid(ErrTokenMalformed, dup.Error())
	case err != nil:
		return nil, introspectionUnavailable("answer is not a JSON object", nil)
	}
	return m, nil
}

// principal reads an introspection answer (RFC 7662 §2.2, RFC 9449 §6.2).
// inactive is true when the server said "active": false, a definite answer
// worth caching; other refusals come from malformed answers.
func (v *IntrospectionValidator) principal(m jose.Object, now time.Time) (p *Principal, inactive bool, err error) {
	isActive, present, err := m.BoolMember("active")
	switch {
	case !present:
		return nil, false, introspectionInvalid(ErrTokenMalformed, "active missing")
	case err != nil:
		return nil, false, introspectionInvalid(ErrTokenMalformed, "active is not a boolean")
	case !isActive:
		return nil, true, introspectionInvalid(ErrTokenInactive, "inactive")
	}
	var sub, clientID, scope, tokenType, jkt string
	for _, f := range []struct {
		dst  *string
		name string
	}{{&sub, "sub"}, {&clientID, "client_id"}, {&scope, "scope"}, {&tokenType, "token_type"}} {
		if *f.dst, err = m.StringMember(f.name); err != nil {
			return nil, false, introspectionInvalid(ErrTokenMalformed, err.Error())
		}
	}
	exp, err := m.DateMember("exp")
	if err != nil {
		return nil, false, introspectionInvalid(ErrTokenMalformed, err.Error())
	}
	if jkt, err = m.CnfJKT(); err != nil {
		return nil, false, introspectionInvalid(ErrTokenMalformed, err.Error())
	}
	aud, err := m.AudienceMember("aud")
	if err != nil {
		return nil, false, introspectionInvalid(ErrTokenMalformed, err.Error())
	}
	claims, err := m.HostClaims()
	if err != nil {
		return nil, false, introspectionInvalid(ErrTokenMalformed, err.Error())
	}
	switch {
	case exp.IsZero():
		return nil, false, introspectionInvalid(ErrTokenMalformed, "exp missing")
	case !now.Before(exp):
		return nil, false, introspectionInvalid(ErrTokenExpired, "expired")
	case strings.EqualFold(tokenType, "DPoP"):
		if jkt == "" {
			return nil, false, introspectionInvalid(ErrTokenMalformed, "DPoP token without cnf.jkt")
		}
	case strings.EqualFold(tokenType, "Bearer"):
		if jkt != "" {
			return nil, false, introspectionInvalid(ErrTokenMalformed, "Bearer token with cnf.jkt")
		}
	default:
		return nil, false, introspectionInvalid(ErrTokenMalformed, "not an access token type")
	}
	return &Principal{Subject: sub, ClientID: clientID, Scopes: splitScope(scope), JKT: jkt, ExpiresAt: exp, Audience: aud, Claims: claims}, false, nil
}

// introspectionInvalid is a token refusal: ErrInvalidToken, the cause (one
// of the ErrToken sentinels) and a fixed reason.
func introspectionInvalid(cause error, reason string) error {
	return &tokenRefusal{cause: cause, reason: "introspection: " + reason}
}

// introspectionUnavailable is a failure to get an answer, with a fixed
// reason and, optionally, the transport error (which names the endpoint,
// never the token: the token travels in the body).
func introspectionUnavailable(reason string, cause error) error {
	if cause != nil {
		return fmt.Errorf("%w: introspection: %s: %w", ErrValidatorUnavailable, reason, cause)
	}
	return fmt.Errorf("%w: introspection: %s", ErrValidatorUnavailable, reason)
}
