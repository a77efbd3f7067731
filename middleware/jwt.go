package middleware

import (
	"cmp"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// JWTOptions configures [NewJWTValidator], which validates JWT access tokens
// as RFC 9068 §4 describes. Zero fields take the documented defaults. The
// audience is not among them: the middleware checks aud against
// Options.Audiences, for every TokenValidator alike.
type JWTOptions struct {
	// Issuer is the authorization server's issuer identifier (RFC 8414
	// §2); the iss claim must equal it exactly (RFC 9068 §4). Required.
	Issuer string
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
	// last fetch failed. Until a first set has been fetched the wait is
	// shorter: the first token after a failed start-up fetch fetches at
	// once, later ones after 250 ms, 500 ms, 1 s… up to 30 seconds, so
	// that an authorization server in the same process, not yet listening
	// when the validator is made, is reached promptly (passing its keys as
	// Keys avoids the fetch altogether). Fetches time out after 10
	// seconds, do not follow the caller's cancellation (one caller giving
	// up does not spoil the fetch for the others) and read at most 512 KiB.
	JWKSURL string
	// HTTPClient fetches the JWKS (RFC 7517 §5) from the jwks_uri
	// (RFC 8414 §2). Default: a client with a 10 second timeout that
	// follows redirects only to https (or loopback http) URLs, so that the
	// keys cannot be fetched over a downgraded connection.
	HTTPClient *http.Client
	// Leeway is the allowance for clock skew when checking exp, nbf and
	// iat (RFC 7519 §4.1.4, §4.1.5). Default DefaultLeeway (30 seconds);
	// negative values are refused.
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
	// Default DefaultCacheSize (10,000 entries); negative values are
	// refused.
	CacheSize int
	// CacheTTL is how long a validated token is trusted without checking
	// it again, never past its exp. Default DefaultCacheTTL (1 minute): a
	// key withdrawn from the JWKS stops being trusted within that time.
	// Negative values are refused.
	CacheTTL time.Duration
	// DisableCache turns the cache of validated tokens off: every request
	// checks its token's signature.
	DisableCache bool
}

// normalize validates the options and fills in the defaults, on a copy.
func (o JWTOptions) normalize() (JWTOptions, error) {
	switch {
	case o.Issuer == "":
		return o, errors.New("middleware: JWTOptions.Issuer is required")
	case o.Leeway < 0 || o.CacheSize < 0 || o.CacheTTL < 0:
		return o, errors.New("middleware: JWTOptions.Leeway, CacheSize and CacheTTL must not be negative")
	case (o.Keys != nil && o.Keys.Len() > 0) == (o.JWKSURL != ""):
		return o, errors.New("middleware: set exactly one of JWTOptions.Keys and JWTOptions.JWKSURL")
	case o.JWKSURL != "" && !serverURLAllowed(o.JWKSURL):
		return o, errors.New("middleware: JWTOptions.JWKSURL must be an https URL (http only on a loopback address)")
	}
	o.Leeway = cmp.Or(o.Leeway, DefaultLeeway)
	o.CacheSize = cmp.Or(o.CacheSize, DefaultCacheSize)
	o.CacheTTL = cmp.Or(o.CacheTTL, DefaultCacheTTL)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: DefaultHTTPTimeout, CheckRedirect: secureRedirectsOnly}
	}
	return o, nil
}

// JWTValidator is a [TokenValidator] for JWT access tokens (RFC 9068). It
// does not check aud: the middleware does, for every validator, against
// Options.Audiences (RFC 9068 §4, RFC 8707); a caller that uses Validate
// outside the middleware must check Principal.Audience itself. It accepts
// a token only when every other check of RFC 9068 §4 passes:
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
//     RFC 7519 §2): iss equals Issuer, aud (if present) is a string or an
//     array of strings, exp is present and not past, nbf (if present) is
//     not in the future, iat is present and not in the future (all within
//     Leeway), and sub and client_id are non-empty strings;
//   - cnf, when present, is an object holding only a non-empty jkt
//     (RFC 9449 §6.1): a token bound some other way is refused rather
//     than treated as unbound.
//
// The validator does not judge aud: the middleware does, for every
// validator alike, against Options.Audiences (RFC 9068 §4, RFC 8707 §2).
// The Principal carries sub, client_id, scope split on spaces (RFC 9068
// §2.2.3, RFC 6749 §3.3), cnf.jkt, exp, aud as Audience and the members
// that are not registered claims as Claims. A refusal wraps ErrInvalidToken
// with a short fixed reason, never the token; a JWKS that cannot be fetched
// while no key set is usable wraps ErrValidatorUnavailable. It is safe for
// concurrent use.
type JWTValidator struct {
	issuer string
	algs   map[string]jose.Spec
	leeway time.Duration
	now    func() time.Time

	// keys are the authorization server's keys: static, or from its JWKS.
	keys *keySet

	// results caches validated tokens by hash; nil when off.
	results   *lru.Cache[[sha256.Size]byte, jwtResult]
	resultTTL time.Duration
}

// jwtResult is a cached validation: the principal and until when to trust it.
type jwtResult struct {
	p     Principal
	until time.Time
}

// NewJWTValidator validates opts and returns a validator for RFC 9068 JWT
// access tokens. With JWKSURL, ctx bounds the life of the key cache: when
// it is done the background refresh stops and fetches fail, and tokens are
// checked against the last set fetched, if any. NewJWTValidator fetches the
// set once; when that fails it still returns the validator, which answers
// ErrValidatorUnavailable (the middleware's 503) until a later fetch
// succeeds, so that a resource server can start before its authorization
// server.
func NewJWTValidator(ctx context.Context, opts JWTOptions) (*JWTValidator, error) {
	opts, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	algs, err := jose.AllowList("middleware: JWTOptions.Algorithms", opts.Algorithms)
	if err != nil {
		return nil, err
	}
	v := &JWTValidator{issuer: opts.Issuer, leeway: opts.Leeway, now: opts.Now, algs: algs}
	if !opts.DisableCache {
		if v.results, err = lru.New[[sha256.Size]byte, jwtResult](opts.CacheSize); err != nil {
			return nil, fmt.Errorf("middleware: JWT cache: %w", err)
		}
		v.resultTTL = opts.CacheTTL
	}
	if opts.JWKSURL == "" {
		if v.keys, err = newStaticKeys(opts.Keys); err != nil {
			return nil, err
		}
		return v, nil
	}
	if ctx == nil {
		return nil, errors.New("middleware: NewJWTValidator needs a context with JWKSURL")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("middleware: NewJWTValidator: %w", err)
	}
	if v.keys, err = newJWKSKeys(ctx, opts.JWKSURL, opts.HTTPClient, opts.Now); err != nil {
		return nil, err
	}
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
		p.detach()
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
	cached.detach()
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
		return v.keys.key(ctx, kid, spec)
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
	return &Principal{Subject: c.Subject, ClientID: c.ClientID, Scopes: splitScope(c.Scope), JKT: c.JKT, ExpiresAt: c.Expiry,
		Audience: c.Audience, Claims: c.Claims}, nil
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
