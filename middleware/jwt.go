package middleware

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Limits and defaults of JWTValidator.
const (
	// jwtDefaultLeeway is the default allowance for clock skew.
	jwtDefaultLeeway = 30 * time.Second
	// jwksRefreshInterval is how often the cached JWKS is fetched again in
	// the background, whatever the server's caching headers say.
	jwksRefreshInterval = 5 * time.Minute
	// jwksRefreshWindow is how often the background refresher wakes up.
	jwksRefreshWindow = time.Minute
	// jwksRefetchInterval is the least time between two fetches triggered
	// by a token (an unknown kid, or no usable key set yet).
	jwksRefetchInterval = 30 * time.Second
	// jwksFetchTimeout bounds one fetch of the JWKS, including the body.
	jwksFetchTimeout = 10 * time.Second
	// jwksMaxBytes bounds the JWKS document.
	jwksMaxBytes = 512 << 10
	// defaultHTTPTimeout is the timeout of the default HTTP clients.
	defaultHTTPTimeout = 10 * time.Second
)

// JWTOptions configures [NewJWTValidator], which validates JWT access tokens
// as RFC 9068 §4 describes. Zero fields take the documented defaults.
type JWTOptions struct {
	// Issuer is the authorization server's issuer identifier (RFC 8414
	// §2); the iss claim must equal it exactly (RFC 9068 §4). Required.
	Issuer string
	// Audience identifies this resource server; the aud claim, a string
	// or an array of strings, must contain it (RFC 9068 §4, RFC 7519
	// §4.1.3). Required.
	Audience string
	// Keys holds the authorization server's public signing keys (RFC 7517
	// §5), given directly and copied by NewJWTValidator. Each key needs a
	// kid; private keys are reduced to their public halves and symmetric
	// keys are refused. Exactly one of Keys and JWKSURL must be set.
	Keys jwk.Set
	// JWKSURL is the authorization server's jwks_uri (RFC 8414 §2): https,
	// or http on a loopback address. The set is fetched once by
	// NewJWTValidator and then kept in a jwx jwk.Cache, which fetches it
	// again in the background every 5 minutes (a fixed interval: the
	// response's Cache-Control is not followed, so that a key withdrawn
	// from the set stops verifying within about 6 minutes). A token whose
	// kid is not in the cached set, or any token while no set has been
	// fetched yet, makes the validator fetch the set again at once, but
	// at most once every 30 seconds (by Now): a rotated-in key is picked
	// up without waiting for the next refresh, and tokens with made-up kids
	// cannot turn the resource server into a load generator against the
	// authorization server. Within those 30 seconds an unknown kid is
	// refused with ErrInvalidToken, or ErrValidatorUnavailable when the
	// last fetch failed. Fetches time out after 10 seconds, do not follow
	// the caller's cancellation (one caller giving up does not spoil the
	// fetch for the others) and read at most 512 KiB.
	JWKSURL string
	// HTTPClient fetches the JWKS (RFC 7517 §5) from the jwks_uri
	// (RFC 8414 §2). Default: a client with a 10 second timeout that
	// follows redirects only to https (or loopback http) URLs, so that the
	// keys cannot be fetched over a downgraded connection.
	HTTPClient *http.Client
	// Leeway is the allowance for clock skew when checking exp, nbf and
	// iat (RFC 7519 §4.1.4, §4.1.5). Default 30 seconds; negative values
	// are refused.
	Leeway time.Duration
	// Algorithms are the allowed JWS algorithms (RFC 9068 §4, RFC 8725
	// §3.1). Default: every algorithm of the kit's JOSE profile, the one
	// package handlers signs with: ES256, ES384, ES512, Ed25519, EdDSA,
	// PS256, PS384, PS512, RS256, RS384 and RS512. Only those may be
	// listed: "none" and the HMAC algorithms are refused.
	Algorithms []string
	// Now is the clock for exp, nbf and iat (RFC 7519 §4.1.4–4.1.6) and
	// for the refetch rule. Default time.Now.
	Now func() time.Time
	// CacheSize bounds a cache of validated tokens (keyed by their SHA-256
	// hash), so that a client presenting the same token on every request
	// costs one signature check per CacheTTL rather than one per request.
	// Default 10,000 entries; negative turns the cache off.
	CacheSize int
	// CacheTTL is how long a validated token is trusted without checking
	// it again, never past its exp. Default 1 minute: a key withdrawn from
	// the JWKS stops being trusted within that time.
	CacheTTL time.Duration
}

// JWTValidator is a [TokenValidator] for JWT access tokens (RFC 9068). It
// accepts a token only when every check of RFC 9068 §4 passes:
//
//   - the token is at most 16 KiB and a JWS in compact serialization
//     (RFC 7515 §7.1) with exactly one signature;
//   - the protected header has typ "at+jwt" or "application/at+jwt"
//     (compared case-insensitively), an allowed alg and a kid; a crit or
//     b64 header is refused (RFC 7515 §4.1.11, RFC 7797);
//   - exactly one signing key of the set has that kid, and it suits the
//     alg under the kit's JOSE profile (key type, curve, RSA of 2048 to
//     4096 bits with e = 65537, its own alg, use and key_ops if it names
//     them); the signature verifies with that key, no other;
//   - the claims are a JSON object, decoded with exact member names, each
//     of the JSON type RFC 7519 §4.1 and RFC 9068 §2.2 give it, none
//     twice, dates under the one NumericDate rule (0 to the year 9999,
//     RFC 7519 §2): iss equals
//     Issuer, aud contains Audience, exp is present and not past, nbf (if
//     present) is not in the future, iat is present and not in the future
//     (all within Leeway), and sub and client_id are non-empty strings;
//   - cnf, when present, is an object holding only a non-empty jkt
//     (RFC 9449 §6.1): a token bound some other way is refused rather
//     than treated as unbound.
//
// The Principal carries sub, client_id, scope split on spaces (RFC 9068
// §2.2.3, RFC 6749 §3.3), cnf.jkt and exp. A refusal wraps ErrInvalidToken
// with a short fixed reason, never the token; a JWKS that cannot be fetched
// while no key set is usable wraps ErrValidatorUnavailable. It is safe for
// concurrent use.
type JWTValidator struct {
	issuer   string
	audience string
	algs     map[string]jose.Spec
	leeway   time.Duration
	now      func() time.Time

	// keys is the static key set; nil when a JWKS URL is used.
	keys jwk.Set

	// With a JWKS URL: the cache, its lifetime, and the refetch rule.
	life  context.Context
	cache *jwk.Cache
	url   string
	// refetch is a one-slot semaphore serializing token-triggered
	// fetches; it guards lastFetch and lastErr.
	refetch   chan struct{}
	lastFetch time.Time
	lastErr   error

	// results caches validated tokens by hash; nil when off.
	results   *lru.Cache[[sha256.Size]byte, jwtResult]
	resultTTL time.Duration
}

// jwtResult is a cached validation: the principal and until when to trust it.
type jwtResult struct {
	p     Principal
	until time.Time
}

const (
	jwtDefaultCacheSize = 10_000
	jwtDefaultCacheTTL  = time.Minute
)

// NewJWTValidator validates opts and returns a validator for RFC 9068 JWT
// access tokens. With JWKSURL, ctx bounds the life of the key cache: when
// it is done the background refresh stops and fetches fail, and tokens are
// checked against the last set fetched, if any. NewJWTValidator fetches the
// set once; when that fails it still returns the validator, which answers
// ErrValidatorUnavailable (the middleware's 503) until a later fetch
// succeeds, so that a resource server can start before its authorization
// server.
func NewJWTValidator(ctx context.Context, opts JWTOptions) (*JWTValidator, error) {
	if opts.Issuer == "" {
		return nil, errors.New("middleware: JWTOptions.Issuer is required")
	}
	if opts.Audience == "" {
		return nil, errors.New("middleware: JWTOptions.Audience is required")
	}
	if opts.Leeway < 0 {
		return nil, errors.New("middleware: JWTOptions.Leeway must not be negative")
	}
	if opts.Leeway == 0 {
		opts.Leeway = jwtDefaultLeeway
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	algs, err := jose.AllowList("middleware: JWTOptions.Algorithms", opts.Algorithms)
	if err != nil {
		return nil, err
	}
	v := &JWTValidator{issuer: opts.Issuer, audience: opts.Audience, leeway: opts.Leeway, now: opts.Now, algs: algs}
	if opts.CacheSize >= 0 {
		if opts.CacheSize == 0 {
			opts.CacheSize = jwtDefaultCacheSize
		}
		if opts.CacheTTL <= 0 {
			opts.CacheTTL = jwtDefaultCacheTTL
		}
		v.results, _ = lru.New[[sha256.Size]byte, jwtResult](opts.CacheSize)
		v.resultTTL = opts.CacheTTL
	}
	hasKeys := opts.Keys != nil && opts.Keys.Len() > 0
	switch {
	case hasKeys == (opts.JWKSURL != ""):
		return nil, errors.New("middleware: set exactly one of JWTOptions.Keys and JWTOptions.JWKSURL")
	case hasKeys:
		keys, err := publicVerificationKeys(opts.Keys)
		if err != nil {
			return nil, err
		}
		v.keys = keys
		return v, nil
	}
	if ctx == nil {
		return nil, errors.New("middleware: NewJWTValidator needs a context with JWKSURL")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("middleware: NewJWTValidator: %w", err)
	}
	if !serverURLAllowed(opts.JWKSURL) {
		return nil, errors.New("middleware: JWTOptions.JWKSURL must be an https URL (http only on a loopback address)")
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: defaultHTTPTimeout, CheckRedirect: secureRedirectsOnly}
	}
	v.life, v.url, v.refetch = ctx, opts.JWKSURL, make(chan struct{}, 1)
	v.cache = jwk.NewCache(ctx, jwk.WithRefreshWindow(jwksRefreshWindow))
	fetcher := &jwksFetcher{life: ctx, client: client}
	if err := v.cache.Register(v.url, jwk.WithHTTPClient(fetcher), jwk.WithRefreshInterval(jwksRefreshInterval)); err != nil {
		return nil, fmt.Errorf("middleware: JWKS cache: %w", err)
	}
	// The first fetch; its failure is reported by Validate, as unavailable.
	v.fetch(ctx)
	return v, nil
}

// Validate implements [TokenValidator] for RFC 9068 JWT access tokens; see
// [JWTValidator] for the checks (RFC 9068 §4).
func (v *JWTValidator) Validate(ctx context.Context, token string) (*Principal, error) {
	if v == nil {
		return nil, fmt.Errorf("%w: jwt: no validator", ErrValidatorUnavailable)
	}
	if v.results == nil {
		return v.validate(ctx, token)
	}
	sum := sha256.Sum256([]byte(token))
	now := v.now()
	if r, ok := v.results.Get(sum); ok && now.Before(r.until) {
		p := r.p
		p.Scopes = slices.Clone(r.p.Scopes)
		return &p, nil
	}
	p, err := v.validate(ctx, token)
	if err != nil {
		return nil, err
	}
	until := now.Add(v.resultTTL)
	if p.ExpiresAt.Before(until) {
		until = p.ExpiresAt
	}
	cached := *p
	cached.Scopes = slices.Clone(p.Scopes)
	v.results.Add(sum, jwtResult{p: cached, until: until})
	return p, nil
}

// validate checks a token without the cache: the JOSE profile's checks
// (jose.VerifyAccessToken), then the claims.
func (v *JWTValidator) validate(ctx context.Context, token string) (*Principal, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := jose.VerifyAccessToken(token, v.algs, func(kid string, spec jose.Spec) (crypto.PublicKey, error) {
		return v.key(ctx, kid, spec)
	})
	switch {
	case errors.Is(err, ErrValidatorUnavailable):
		return nil, err
	case err != nil:
		return nil, jwtInvalid(joseCause(err), err.Error())
	}
	return v.claims(c)
}

// claims checks the claims of a verified token (RFC 9068 §4, RFC 7519
// §4.1).
func (v *JWTValidator) claims(c *jose.AccessTokenClaims) (*Principal, error) {
	now := v.now()
	switch {
	case c.Issuer != v.issuer:
		return nil, jwtInvalid(ErrTokenIssuer, "wrong issuer")
	case !slices.Contains(c.Audience, v.audience):
		return nil, jwtInvalid(ErrTokenAudience, "wrong audience")
	case c.Expiry.IsZero():
		return nil, jwtInvalid(ErrTokenMalformed, "exp missing")
	case !now.Before(c.Expiry.Add(v.leeway)):
		return nil, jwtInvalid(ErrTokenExpired, "expired")
	case !c.NotBefore.IsZero() && c.NotBefore.After(now.Add(v.leeway)):
		return nil, jwtInvalid(ErrTokenNotYetValid, "not yet valid")
	case c.IssuedAt.IsZero():
		return nil, jwtInvalid(ErrTokenMalformed, "iat missing")
	case c.IssuedAt.After(now.Add(v.leeway)):
		return nil, jwtInvalid(ErrTokenNotYetValid, "issued in the future")
	case c.Subject == "":
		return nil, jwtInvalid(ErrTokenMalformed, "sub missing")
	case c.ClientID == "":
		return nil, jwtInvalid(ErrTokenMalformed, "client_id missing")
	}
	return &Principal{Subject: c.Subject, ClientID: c.ClientID, Scopes: splitScope(c.Scope), JKT: c.JKT, ExpiresAt: c.Expiry}, nil
}

// key returns the public key of the one key of the set named kid, fit for
// spec (RFC 7515 §4.1.4, RFC 9068 §4), fetching the JWKS again when needed
// and allowed.
func (v *JWTValidator) key(ctx context.Context, kid string, spec jose.Spec) (crypto.PublicKey, error) {
	if v.keys != nil {
		return jose.PickKey(v.keys, kid, spec)
	}
	if set, err := v.cached(ctx); err == nil {
		k, err := jose.PickKey(set, kid, spec)
		if !errors.Is(err, jose.ErrUnknownKid) {
			return k, err
		}
	}
	// No usable set, or an unknown kid: the set may have changed.
	set, err := v.fetchLimited(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: jwt: JWKS: %w", ErrValidatorUnavailable, err)
	}
	return jose.PickKey(set, kid, spec)
}

// cached returns the cached key set without fetching.
func (v *JWTValidator) cached(ctx context.Context) (jwk.Set, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	defer cancel()
	set, err := v.cache.Get(ctx, v.url)
	if err == nil && set == nil {
		err = errors.New("no key set")
	}
	return set, err
}

// fetchLimited fetches the JWKS unless a token-triggered fetch happened
// less than jwksRefetchInterval ago; then it returns what that fetch left:
// the cached set, or its error. Callers wait for a fetch in progress.
func (v *JWTValidator) fetchLimited(ctx context.Context) (jwk.Set, error) {
	select {
	case v.refetch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-v.refetch }()
	now := v.now()
	if !v.lastFetch.IsZero() && !now.Before(v.lastFetch) && now.Sub(v.lastFetch) < jwksRefetchInterval {
		if v.lastErr != nil {
			return nil, v.lastErr
		}
		return v.cached(ctx)
	}
	return v.fetchLocked(ctx)
}

// fetch fetches the JWKS now, holding the refetch slot.
func (v *JWTValidator) fetch(ctx context.Context) (jwk.Set, error) {
	select {
	case v.refetch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-v.refetch }()
	return v.fetchLocked(ctx)
}

// fetchLocked fetches the JWKS and records the attempt; the caller holds
// the refetch slot. The fetch does not end with the caller's context, only
// with the cache's life or the timeout.
func (v *JWTValidator) fetchLocked(ctx context.Context) (jwk.Set, error) {
	v.lastFetch = v.now()
	if err := v.life.Err(); err != nil {
		v.lastErr = fmt.Errorf("key cache stopped: %w", err)
		return nil, v.lastErr
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	defer cancel()
	stop := context.AfterFunc(v.life, cancel)
	defer stop()
	set, err := v.cache.Refresh(ctx, v.url)
	if err == nil && set == nil {
		err = errors.New("no key set")
	}
	v.lastErr = err
	return set, err
}

// publicVerificationKeys returns the public halves of keys, refusing
// symmetric keys, keys without a kid and signature keys that fit no
// algorithm of the JOSE profile (an RSA key of 1024 bits, say), which could
// verify no token.
func publicVerificationKeys(keys jwk.Set) (jwk.Set, error) {
	out := jwk.NewSet()
	for i := range keys.Len() {
		k, _ := keys.Key(i)
		if k == nil || k.KeyType() == jwa.OctetSeq {
			return nil, errors.New("middleware: JWTOptions.Keys must hold asymmetric public keys")
		}
		if k.KeyID() == "" {
			return nil, errors.New("middleware: every key of JWTOptions.Keys needs a kid")
		}
		if err := fitsProfile(k); err != nil {
			return nil, fmt.Errorf("middleware: JWTOptions.Keys[%d] (kid %q): %w", i, k.KeyID(), err)
		}
		pub, err := k.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("middleware: JWTOptions.Keys: %w", err)
		}
		if err := out.AddKey(pub); err != nil {
			return nil, fmt.Errorf("middleware: JWTOptions.Keys: %w", err)
		}
	}
	return out, nil
}

// fitsProfile returns nil when k may verify tokens of at least one
// algorithm of the JOSE profile (its own alg, when it names one), or is an
// encryption key, which is never used; otherwise why it fits none.
func fitsProfile(k jwk.Key) error {
	if k.KeyUsage() == string(jwk.ForEncryption) {
		return nil
	}
	if a := k.Algorithm().String(); a != "" {
		spec, ok := jose.Lookup(a)
		if !ok {
			return fmt.Errorf("alg %q is not allowed (asymmetric JWS algorithms only: %v)", a, jose.Names())
		}
		_, err := jose.KeyFor(k, spec, jwk.KeyOpVerify)
		return err
	}
	var first error
	for _, name := range jose.Names() {
		spec, _ := jose.Lookup(name)
		_, err := jose.KeyFor(k, spec, jwk.KeyOpVerify)
		if err == nil {
			return nil
		}
		if first == nil && spec.KTY == k.KeyType().String() {
			first = err
		}
	}
	if first == nil {
		first = fmt.Errorf("%w: no algorithm takes a %s key", jose.ErrKeyFit, k.KeyType())
	}
	return first
}

// jwksFetcher is the HTTP client of the key cache: every fetch is bounded
// in time and size, and only a 200 answer is handed to the JWKS parser.
type jwksFetcher struct {
	life   context.Context
	client *http.Client
}

// Get fetches the JWKS (RFC 7517 §5) at u.
func (f *jwksFetcher) Get(u string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(f.life, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	res, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS endpoint answered %d", res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the JWKS: %w", err)
	}
	if len(body) > jwksMaxBytes {
		return nil, errors.New("the JWKS is too large")
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res, nil
}

// jwtInvalid is a token refusal: ErrInvalidToken, the cause (one of the
// ErrToken sentinels) and a fixed reason.
func jwtInvalid(cause error, reason string) error {
	return &tokenRefusal{cause: cause, reason: "jwt: " + reason}
}

// joseCause is the sentinel cause of a refusal by the JOSE profile.
func joseCause(err error) error {
	switch {
	case errors.Is(err, jose.ErrAlgorithm):
		return ErrTokenAlgorithm
	case errors.Is(err, jose.ErrUnknownKid), errors.Is(err, jose.ErrAmbiguousKid), errors.Is(err, jose.ErrKeyFit):
		return ErrUnknownKey
	case errors.Is(err, jose.ErrSignature):
		return ErrTokenSignature
	}
	return ErrTokenMalformed
}

// serverURLAllowed reports whether u is an absolute https URL, or http on a
// loopback address (for development), without user info or fragment.
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

// splitScope splits a scope value on the space character, the only
// separator of RFC 6749 §3.3; other whitespace stays inside a scope token,
// which then matches no required scope.
func splitScope(scope string) []string {
	return strings.FieldsFunc(scope, func(r rune) bool { return r == ' ' })
}
