package middleware

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Limits and defaults of JWTValidator.
const (
	// jwtMaxBytes bounds a JWT access token before anything parses it.
	jwtMaxBytes = 16 << 10
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

// asymmetricAlgs are the JWS algorithms (RFC 7518 §3.1, RFC 8037 §3.1) a
// JWTValidator may allow: digital signatures only. "none" and the HMAC
// algorithms are never among them: a resource server holding a MAC key
// could forge tokens, and a public key must never serve as an HMAC secret.
var asymmetricAlgs = []jwa.SignatureAlgorithm{
	jwa.RS256, jwa.RS384, jwa.RS512,
	jwa.PS256, jwa.PS384, jwa.PS512,
	jwa.ES256, jwa.ES384, jwa.ES512,
	jwa.EdDSA,
}

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
	// §3.1). Default: RS256, RS384, RS512, PS256, PS384, PS512, ES256,
	// ES384, ES512 and EdDSA. Only those may be listed: "none" and the HMAC
	// algorithms are refused.
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
//     alg (key type, curve, at least 2048 bits for RSA, its own alg and use
//     if it names them); the signature verifies with that key, no other;
//   - the claims are a JSON object, decoded with exact member names, each
//     of the JSON type RFC 7519 §4.1 and RFC 9068 §2.2 give it: iss equals
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
	algs     map[jwa.SignatureAlgorithm]bool
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
	v := &JWTValidator{issuer: opts.Issuer, audience: opts.Audience, leeway: opts.Leeway, now: opts.Now, algs: map[jwa.SignatureAlgorithm]bool{}}
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
	if len(opts.Algorithms) == 0 {
		for _, a := range asymmetricAlgs {
			v.algs[a] = true
		}
	}
	for _, name := range opts.Algorithms {
		ok := false
		for _, a := range asymmetricAlgs {
			if a.String() == name {
				v.algs[a], ok = true, true
			}
		}
		if !ok {
			return nil, fmt.Errorf("middleware: JWT algorithm %q is not allowed (asymmetric algorithms only)", name)
		}
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

// validate checks a token without the cache.
func (v *JWTValidator) validate(ctx context.Context, token string) (*Principal, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if token == "" || len(token) > jwtMaxBytes {
		return nil, jwtInvalid("size out of bounds")
	}
	if strings.Count(token, ".") != 2 || strings.ContainsAny(token, " \t\r\n{") {
		return nil, jwtInvalid("not a compact JWS")
	}
	msg, err := jws.Parse([]byte(token), jws.WithCompact())
	if err != nil {
		return nil, jwtInvalid("malformed JWS")
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 || sigs[0].ProtectedHeaders() == nil {
		return nil, jwtInvalid("not exactly one signature")
	}
	h := sigs[0].ProtectedHeaders()
	if typ := h.Type(); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, jwtInvalid("typ is not at+jwt")
	}
	if _, crit := h.Get(jws.CriticalKey); crit || len(h.Critical()) > 0 {
		return nil, jwtInvalid("crit header not supported")
	}
	if _, b64 := h.Get("b64"); b64 {
		return nil, jwtInvalid("b64 header not supported")
	}
	alg := h.Algorithm()
	if !v.algs[alg] {
		return nil, jwtInvalid("alg not allowed")
	}
	kid := h.KeyID()
	if kid == "" {
		return nil, jwtInvalid("kid missing")
	}
	key, err := v.key(ctx, kid, alg)
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify([]byte(token), jws.WithCompact(), jws.WithKey(alg, key))
	if err != nil {
		return nil, jwtInvalid("signature does not verify")
	}
	return v.claims(payload)
}

// claims decodes and checks the payload of a verified token (RFC 9068 §4,
// RFC 7519 §4.1).
func (v *JWTValidator) claims(payload []byte) (*Principal, error) {
	m, err := jsonObject(payload)
	if err != nil {
		return nil, jwtInvalid("claims are not a JSON object")
	}
	var c struct {
		iss, sub, clientID, scope, jti, jkt string
		aud                                 []string
		exp, nbf, iat                       *time.Time
	}
	for _, f := range []struct {
		name string
		err  error
	}{
		{"iss", stringMember(m, "iss", &c.iss)},
		{"sub", stringMember(m, "sub", &c.sub)},
		{"client_id", stringMember(m, "client_id", &c.clientID)},
		{"scope", stringMember(m, "scope", &c.scope)},
		{"jti", stringMember(m, "jti", &c.jti)},
		{"aud", audienceMember(m, "aud", &c.aud)},
		{"exp", dateMember(m, "exp", &c.exp)},
		{"nbf", dateMember(m, "nbf", &c.nbf)},
		{"iat", dateMember(m, "iat", &c.iat)},
		{"cnf", cnfMember(m, &c.jkt)},
	} {
		if f.err != nil {
			return nil, jwtInvalid(f.name + " is malformed")
		}
	}
	now := v.now()
	switch {
	case c.iss != v.issuer:
		return nil, jwtInvalid("wrong issuer")
	case !containsString(c.aud, v.audience):
		return nil, jwtInvalid("wrong audience")
	case c.exp == nil:
		return nil, jwtInvalid("exp missing")
	case !now.Before(c.exp.Add(v.leeway)):
		return nil, jwtInvalid("expired")
	case c.nbf != nil && c.nbf.After(now.Add(v.leeway)):
		return nil, jwtInvalid("not yet valid")
	case c.iat == nil:
		return nil, jwtInvalid("iat missing")
	case c.iat.After(now.Add(v.leeway)):
		return nil, jwtInvalid("issued in the future")
	case c.sub == "":
		return nil, jwtInvalid("sub missing")
	case c.clientID == "":
		return nil, jwtInvalid("client_id missing")
	}
	return &Principal{Subject: c.sub, ClientID: c.clientID, Scopes: splitScope(c.scope), JKT: c.jkt, ExpiresAt: *c.exp}, nil
}

// key returns the one key of the set named kid, fit for alg (RFC 7515
// §4.1.4, RFC 9068 §4), fetching the JWKS again when needed and allowed.
func (v *JWTValidator) key(ctx context.Context, kid string, alg jwa.SignatureAlgorithm) (jwk.Key, error) {
	if v.keys != nil {
		return pickKey(v.keys, kid, alg)
	}
	if set, err := v.cached(ctx); err == nil {
		k, err := pickKey(set, kid, alg)
		if !errors.Is(err, errUnknownKid) {
			return k, err
		}
	}
	// No usable set, or an unknown kid: the set may have changed.
	set, err := v.fetchLimited(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: jwt: JWKS: %w", ErrValidatorUnavailable, err)
	}
	return pickKey(set, kid, alg)
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

// errUnknownKid marks a kid absent from the key set.
var errUnknownKid = fmt.Errorf("%w: jwt: unknown kid", ErrInvalidToken)

// pickKey returns the one signature key of set whose kid is kid, if it is
// fit for alg (RFC 7517 §4.2–4.5, RFC 7518 §3). Keys with use "enc" are
// not candidates; two candidates with the same kid are ambiguous and
// refused rather than tried in turn.
func pickKey(set jwk.Set, kid string, alg jwa.SignatureAlgorithm) (jwk.Key, error) {
	var found jwk.Key
	n := 0
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok || k.KeyID() != kid || k.KeyUsage() == string(jwk.ForEncryption) {
			continue
		}
		found = k
		n++
	}
	switch {
	case n == 0:
		return nil, errUnknownKid
	case n > 1:
		return nil, jwtInvalid("ambiguous kid")
	case !keyFitsAlg(found, alg):
		return nil, jwtInvalid("key does not fit alg")
	}
	return found, nil
}

// keyFitsAlg reports whether k may verify signatures made with alg: its
// own alg and use, when present, agree (RFC 7517 §4.2, §4.4), key_ops
// allow verify (§4.3), and the key type, curve and size suit the
// algorithm (RFC 7518 §3.3–3.5, RFC 8037 §3.1).
func keyFitsAlg(k jwk.Key, alg jwa.SignatureAlgorithm) bool {
	if a := k.Algorithm().String(); a != "" && a != alg.String() {
		return false
	}
	if use := k.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return false
	}
	if ops := k.KeyOps(); len(ops) > 0 {
		verify := false
		for _, op := range ops {
			verify = verify || op == jwk.KeyOpVerify
		}
		if !verify {
			return false
		}
	}
	curve := func() jwa.EllipticCurveAlgorithm {
		if c, ok := k.(jwkCurveKey); ok {
			return c.Crv()
		}
		return ""
	}
	switch alg {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
		n, ok := k.(jwkRSAKey)
		return k.KeyType() == jwa.RSA && ok && new(big.Int).SetBytes(n.N()).BitLen() >= 2048
	case jwa.ES256:
		return k.KeyType() == jwa.EC && curve() == jwa.P256
	case jwa.ES384:
		return k.KeyType() == jwa.EC && curve() == jwa.P384
	case jwa.ES512:
		return k.KeyType() == jwa.EC && curve() == jwa.P521
	case jwa.EdDSA:
		return k.KeyType() == jwa.OKP && curve() == jwa.Ed25519
	}
	return false
}

// jwkCurveKey is an EC or OKP key, public or private.
type jwkCurveKey interface {
	Crv() jwa.EllipticCurveAlgorithm
}

// jwkRSAKey is an RSA key, public or private.
type jwkRSAKey interface{ N() []byte }

// publicVerificationKeys returns the public halves of keys, refusing
// symmetric keys and keys without a kid.
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

// jwtInvalid is a token refusal with a fixed reason.
func jwtInvalid(reason string) error {
	return fmt.Errorf("%w: jwt: %s", ErrInvalidToken, reason)
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

// containsString reports whether list holds s.
func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// errJSONType marks a JSON member of the wrong type.
var errJSONType = errors.New("wrong JSON type")

// jsonObject decodes a JSON object into its members, kept raw, so that
// members are then looked up by their exact, case-sensitive names
// (RFC 7519 §4, RFC 7662 §2.2) rather than encoding/json's case-folding
// match.
func jsonObject(data []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errJSONType
	}
	return m, nil
}

// jsonKind returns the first significant byte of a raw JSON value.
func jsonKind(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// stringMember sets *dst to member name of m, which must be a JSON string
// if present; absent leaves *dst empty.
func stringMember(m map[string]json.RawMessage, name string, dst *string) error {
	raw, ok := m[name]
	if !ok {
		return nil
	}
	if jsonKind(raw) != '"' {
		return errJSONType
	}
	return json.Unmarshal(raw, dst)
}

// audienceMember sets *dst to the aud member: a string or an array of
// strings (RFC 7519 §4.1.3).
func audienceMember(m map[string]json.RawMessage, name string, dst *[]string) error {
	raw, ok := m[name]
	if !ok {
		return nil
	}
	switch jsonKind(raw) {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		*dst = []string{s}
		return nil
	case '[':
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return err
		}
		out := make([]string, 0, len(list))
		for _, e := range list {
			var s string
			if jsonKind(e) != '"' {
				return errJSONType
			}
			if err := json.Unmarshal(e, &s); err != nil {
				return err
			}
			out = append(out, s)
		}
		*dst = out
		return nil
	}
	return errJSONType
}

// maxNumericDate is 9999-12-31T23:59:59Z; later dates are refused.
const maxNumericDate = 253402300799

// dateMember sets *dst to member name of m, a NumericDate (RFC 7519 §2): a
// JSON number of seconds since the epoch, possibly fractional, between 0
// and the year 9999. Absent leaves *dst nil.
func dateMember(m map[string]json.RawMessage, name string, dst **time.Time) error {
	raw, ok := m[name]
	if !ok {
		return nil
	}
	if k := jsonKind(raw); k != '-' && (k < '0' || k > '9') {
		return errJSONType
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return err
	}
	if math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return errJSONType
	}
	sec, frac := math.Modf(f)
	t := time.Unix(int64(sec), int64(frac*1e9))
	*dst = &t
	return nil
}

// cnfMember sets *jkt from the cnf member (RFC 7800 §3.1): absent leaves it
// empty; present, it must be an object whose only member is a non-empty
// string jkt (RFC 9449 §6.1). Any other confirmation method is refused,
// since this package cannot enforce it and must not treat the token as
// unbound.
func cnfMember(m map[string]json.RawMessage, jkt *string) error {
	raw, ok := m["cnf"]
	if !ok {
		return nil
	}
	if jsonKind(raw) != '{' {
		return errJSONType
	}
	cnf, err := jsonObject(raw)
	if err != nil {
		return err
	}
	if len(cnf) != 1 {
		return errJSONType
	}
	if err := stringMember(cnf, "jkt", jkt); err != nil {
		return err
	}
	if *jkt == "" {
		return errJSONType
	}
	return nil
}
