package handlers

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/jose"
	"github.com/dpopkit/dpop/store"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// AuthPrivateKeyJWT is the private_key_jwt client authentication method
// (RFC 7523 §2.2, OpenID Connect Core §9): the client proves itself with a
// JWT signed by one of its registered keys (store.Client.JWKS or JWKSURI).
const AuthPrivateKeyJWT = "private_key_jwt"

// ClientAssertionTypeJWT is the client_assertion_type of a JWT client
// assertion (RFC 7523 §2.2): dpop.AssertionType, which the client side
// sends.
const ClientAssertionTypeJWT = dpop.AssertionType

// Fixed rules and defaults of client assertions.
const (
	// AssertionLeeway is the clock skew allowed for an assertion's iat and
	// nbf: up to 10 s in the future is accepted, more is refused (the FAPI
	// 2.0 checklist asks that more than 60 s be refused; 10 s is stricter
	// and matches what the kit allows for proofs). exp gets no leeway: an
	// assertion whose exp has passed is refused.
	AssertionLeeway = 10 * time.Second
	// DefaultAssertionLifetime is the default of
	// ClientAssertionOptions.MaxLifetime.
	DefaultAssertionLifetime = 5 * time.Minute
	// MaxAssertionLifetime is the largest MaxLifetime allowed: it bounds
	// how long a jti is remembered.
	MaxAssertionLifetime = time.Hour
)

// Bounds of the key sets of private_key_jwt clients.
const (
	// jwksURITimeout bounds one fetch of a client's jwks_uri, body
	// included.
	jwksURITimeout = 5 * time.Second
	// jwksURIMaxBytes bounds the document a jwks_uri serves (the same
	// bound as a registered JWKS, store.MaxClientJWKSBytes).
	jwksURIMaxBytes = store.MaxClientJWKSBytes
	// jwksURITTL is how long a fetched key set is used before it is
	// fetched again.
	jwksURITTL = 5 * time.Minute
	// jwksURIRefetch is the least time between two fetches of one URI: an
	// unknown kid, an expired set or a failed fetch triggers at most one
	// fetch per URI in that time.
	jwksURIRefetch = 30 * time.Second
	// jwksURICacheSize bounds the number of URIs whose sets are kept, and
	// jwksSetCacheSize the number of parsed registered sets (Client.JWKS).
	jwksURICacheSize = 1024
	jwksSetCacheSize = 1024
	// jwksURIMaxRedirects bounds the redirects a jwks_uri fetch follows.
	jwksURIMaxRedirects = 3
)

// ClientAssertionOptions configures private_key_jwt client authentication
// (Config.ClientAssertion, RFC 7523 §2.2, §3, draft-ietf-oauth-rfc7523bis).
// The zero value is usable: every algorithm of the kit's JOSE profile, the
// issuer as aud (a string, or a one-element array holding it), assertions
// that live at most DefaultAssertionLifetime.
type ClientAssertionOptions struct {
	// Algorithms are the JWS algorithms an assertion may be signed with,
	// a subset of the kit's profile (ES256, ES384, ES512, EdDSA, Ed25519,
	// PS256, PS384, PS512, RS256, RS384, RS512; never none or HMAC).
	// Default: all of them. FAPI 2.0 wants PS256, ES256 and EdDSA (or
	// Ed25519) only. An assertion with another alg is invalid_client.
	Algorithms []string
	// StrictAudience accepts only the issuer as a JSON string in aud, as
	// FAPI 2.0 requires; without it a one-element array holding the
	// issuer is accepted too (draft-ietf-oauth-rfc7523bis). An aud with
	// anything else, or more than one value, is always refused.
	StrictAudience bool
	// LegacyAudience also accepts the token endpoint URL or the pushed
	// authorization request endpoint URL as aud, at any endpoint: the
	// older rule of RFC 7523 §3 and RFC 9126 §2, which
	// draft-ietf-oauth-rfc7523bis deprecates. Default false.
	LegacyAudience bool
	// MaxLifetime is the longest an assertion may still be valid for when
	// it arrives: exp − now at most MaxLifetime (default
	// DefaultAssertionLifetime, at most MaxAssertionLifetime). It bounds
	// how long each jti is remembered in the replay cache.
	MaxLifetime time.Duration
	// HTTPClient fetches the clients' jwks_uri documents (a proxy, a
	// private CA). Default: http.DefaultTransport. Whatever the client,
	// each fetch is bounded to 5 s and 64 KiB, only https URLs (http on a
	// loopback host) are fetched, and a redirect to any other URL, or more
	// than 3 redirects, fails the fetch.
	HTTPClient *http.Client
}

// normalized returns the options with their defaults, and the allowed
// algorithms as a set; an error names what cannot be enforced, and New
// refuses it.
func (o ClientAssertionOptions) normalized() (ClientAssertionOptions, map[string]jose.Spec, error) {
	algs, err := jose.AllowList("handlers: Config.ClientAssertion.Algorithms", o.Algorithms)
	if err != nil {
		return o, nil, err
	}
	if len(o.Algorithms) == 0 {
		o.Algorithms = jose.Names()
	} else {
		o.Algorithms = slices.Clone(o.Algorithms)
	}
	switch {
	case o.MaxLifetime == 0:
		o.MaxLifetime = DefaultAssertionLifetime
	case o.MaxLifetime < time.Second || o.MaxLifetime > MaxAssertionLifetime:
		return o, nil, fmt.Errorf("handlers: Config.ClientAssertion.MaxLifetime must be between 1s and %v", MaxAssertionLifetime)
	}
	o.HTTPClient = jwksHTTPClient(o.HTTPClient)
	return o, algs, nil
}

// Validate reports whether the options can be enforced: algorithms of the
// kit's profile and a MaxLifetime within bounds.
func (o ClientAssertionOptions) Validate() error {
	_, _, err := o.normalized()
	return err
}

// ErrClientAssertion is the cause of every refusal of a private_key_jwt
// assertion (it wraps ErrClientAuth); the specific cause is wrapped with it.
var ErrClientAssertion = fmt.Errorf("%w: private_key_jwt assertion refused", ErrClientAuth)

// Specific causes of a refused client assertion, each wrapped together with
// ErrClientAssertion; they appear in logs.
var (
	errAssertionType          = errors.New("client_assertion_type is not jwt-bearer")
	errAssertionMalformed     = errors.New("assertion malformed")
	errAssertionIssuer        = errors.New("iss and sub are not both the client id")
	errAssertionClientID      = errors.New("client_id is not the assertion's sub")
	errAssertionUnknownClient = errors.New("unknown client")
	errAssertionNotRegistered = errors.New("client has no registered keys")
	errAssertionRequired      = errors.New("a client registered with keys must use private_key_jwt")
	errAssertionAlgorithm     = errors.New("alg not allowed")
	errAssertionKey           = errors.New("no registered key fits the assertion")
	errAssertionKidRequired   = errors.New("kid required: several keys fit the alg")
	errAssertionSignature     = errors.New("signature does not verify")
	errAssertionExpiry        = errors.New("exp missing or passed")
	errAssertionLifetime      = errors.New("exp too far in the future")
	errAssertionFuture        = errors.New("iat or nbf in the future")
	errAssertionAudience      = errors.New("aud is not the issuer")
	errAssertionJTI           = errors.New("jti missing")
	errAssertionReplayed      = errors.New("assertion replayed")
	errAssertionKeys          = errors.New("registered key set unusable")
)

// ErrClientKeysUnavailable is the cause of a 503 answer when a client's
// jwks_uri cannot be fetched and no key set of it is cached: the server
// cannot decide, so it refuses without blaming the client.
var ErrClientKeysUnavailable = errors.New("handlers: client key set unavailable")

// assertionRefused is the invalid_client refusal of an assertion.
func (s *Server) assertionRefused(cause error) *Error {
	return s.clientAuthFailed(false, fmt.Errorf("%w: %w", ErrClientAssertion, cause))
}

// authenticateAssertion authenticates the client of a request carrying
// client_assertion_type or client_assertion (RFC 7523 §2.2): one method
// only, both parameters, a JWT assertion whose iss and sub are the client
// id (and client_id, when sent), from a client registered with keys, that
// passes checkAssertion and is spent in the replay cache last, once
// everything else holds (a refused request costs no shared state).
func (s *Server) authenticateAssertion(r *http.Request, f form) (*store.Client, *pendingAssertion, *Error) {
	ctx := r.Context()
	typ, assertion, id := f.get("client_assertion_type"), f.get("client_assertion"), f.get("client_id")
	if f.get("client_secret") != "" || r.Header.Get("Authorization") != "" {
		return nil, nil, badRequest(dpop.CodeInvalidRequest, "use one client authentication method", ErrAuthMethods)
	}
	if typ == "" || assertion == "" {
		return nil, nil, badRequest(dpop.CodeInvalidRequest, "client_assertion and client_assertion_type go together", ErrMissingParam)
	}
	if typ != ClientAssertionTypeJWT {
		return nil, nil, s.assertionRefused(errAssertionType)
	}
	a, err := jose.ParseAssertion(assertion)
	if err != nil {
		return nil, nil, s.assertionRefused(fmt.Errorf("%w: %w", errAssertionMalformed, err))
	}
	sub := a.Claims.Subject
	if sub == "" || a.Claims.Issuer != sub {
		return nil, nil, s.assertionRefused(errAssertionIssuer)
	}
	if id != "" && id != sub {
		return nil, nil, s.assertionRefused(errAssertionClientID)
	}
	c, err := s.cfg.Store.GetClient(ctx, sub)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil, s.assertionRefused(errAssertionUnknownClient)
	case err != nil:
		return nil, nil, s.storeError(r, err)
	}
	if !c.KeyAuthenticated() {
		return nil, nil, s.assertionRefused(errAssertionNotRegistered)
	}
	st := s.assertions
	now := s.cfg.Now()
	if cause := st.checkClaims(&a.Claims, now, s.assertionAudiences()); cause != nil {
		return nil, nil, s.assertionRefused(cause)
	}
	if e := s.verifyAssertion(ctx, st, c, a); e != nil {
		return nil, nil, e
	}
	// The jti is spent by the caller (spendAssertion) once the request has
	// passed its other checks: remembered until exp (and the leeway, for
	// the clocks of other instances), under a key of its own domain so
	// that a proof's jti and an assertion's never meet, and every instance
	// sharing the cache agrees.
	ttl := a.Claims.Expiry.Sub(now).Truncate(time.Millisecond) + time.Millisecond + AssertionLeeway
	return c, &pendingAssertion{client: c.ID, key: assertionReplayKey(c.ID, a.Claims.JTI), ttl: ttl}, nil
}

// pendingAssertion is the jti of a verified client assertion, still to be
// recorded in the replay cache.
type pendingAssertion struct {
	client string
	key    dpop.ReplayKey
	ttl    time.Duration
}

// spendAssertion records the jti of a verified assertion (RFC 7523 §3: an
// assertion is used once), refusing a replay with invalid_client; nil is
// nothing to spend. Endpoints call it once the request has passed every
// check that spends nothing, so that a request refused for another reason
// (a use_dpop_nonce answer, say) costs no replay entry and its retry may
// carry the same assertion. The entry is charged to the client's share of
// the replay cache like its proofs (dpop.Verifier.Spend): over it, 429, and
// the assertion is not spent.
func (s *Server) spendAssertion(ctx context.Context, p *pendingAssertion) *Error {
	if p == nil {
		return nil
	}
	// Through the verifier, so that the entry is charged to the client's
	// share of the replay cache, with its proofs (dpop.Quota).
	err := s.verifier.Spend(ctx, p.client, p.key, p.ttl)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dpop.ErrReplay):
		return s.assertionRefused(errAssertionReplayed)
	}
	return proofError(err) // 429 over the client's share, 503 when the cache fails
}

// assertionReplayKey is the replay cache key of an assertion: the client
// id is hashed into a fixed-length base64url string prefixed with the
// domain, which NewReplayKey's first argument must be (no separator byte in
// it), and which no proof's key thumbprint can equal.
func assertionReplayKey(clientID, jti string) dpop.ReplayKey {
	h := sha256.Sum256([]byte(clientID))
	return dpop.NewReplayKey("client-assertion:"+base64.RawURLEncoding.EncodeToString(h[:]), jti)
}

// assertionAudiences are the values aud may hold besides the issuer under
// LegacyAudience: the token endpoint URL (RFC 7523 §3) and the pushed
// authorization request endpoint URL (RFC 9126 §2), at whichever endpoint
// the assertion is sent to.
func (s *Server) assertionAudiences() []string {
	return []string{s.url(s.cfg.Paths.Token), s.url(s.cfg.Paths.PushedAuthorization)}
}

// checkClaims applies the claims policy (RFC 7523 §3): iss and sub were
// checked by the caller; exp required and in the future, but no further
// than MaxLifetime; iat and nbf at most AssertionLeeway in the future; a
// jti; and an aud naming the issuer (see ClientAssertionOptions).
func (st *assertionSettings) checkClaims(c *jose.AssertionClaims, now time.Time, legacy []string) error {
	switch {
	case c.Expiry.IsZero() || !c.Expiry.After(now):
		return errAssertionExpiry
	case c.Expiry.Sub(now) > st.opts.MaxLifetime:
		return errAssertionLifetime
	case c.IssuedAt.Sub(now) > AssertionLeeway, c.NotBefore.Sub(now) > AssertionLeeway:
		return errAssertionFuture
	case c.JTI == "":
		return errAssertionJTI
	}
	if len(c.Audience) != 1 || (c.AudienceArray && st.opts.StrictAudience) {
		return errAssertionAudience
	}
	if aud := c.Audience[0]; aud != st.issuer && !(st.opts.LegacyAudience && slices.Contains(legacy, aud)) {
		return errAssertionAudience
	}
	return nil
}

// verifyAssertion checks the assertion's signature with the client's keys.
// A key set that cannot be had answers 503, never acceptance.
func (s *Server) verifyAssertion(ctx context.Context, st *assertionSettings, c *store.Client, a *jose.Assertion) *Error {
	if _, ok := st.algs[a.Header.Alg]; !ok {
		return s.assertionRefused(errAssertionAlgorithm)
	}
	err := a.Verify(st.algs, func(kid string, spec jose.Spec) (crypto.PublicKey, error) {
		return st.clientKey(ctx, c, kid, spec)
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrClientKeysUnavailable):
		s.cfg.Logger.ErrorContext(ctx, "client key set unavailable", "client_id", c.ID, "err", err)
		return oauthError(http.StatusServiceUnavailable, dpop.CodeServerError, "the server cannot handle the request now", err)
	case errors.Is(err, errAssertionKeys):
		s.cfg.Logger.WarnContext(ctx, "client key set refused", "client_id", c.ID, "err", err)
		return s.assertionRefused(err)
	case errors.Is(err, errAssertionKidRequired):
		return s.assertionRefused(err)
	case errors.Is(err, jose.ErrSignature):
		return s.assertionRefused(errAssertionSignature)
	case errors.Is(err, jose.ErrAlgorithm):
		return s.assertionRefused(errAssertionAlgorithm)
	}
	return s.assertionRefused(fmt.Errorf("%w: %w", errAssertionKey, err))
}

// clientKeyPick returns the public key of set that verifies assertions
// signed with spec: the one key named kid (jose.PickKey), or, without a
// kid, the one signature key that fits spec (errAssertionKidRequired when
// several do, jose.ErrUnknownKid when none does).
func clientKeyPick(set jwk.Set, kid string, spec jose.Spec) (crypto.PublicKey, error) {
	if kid != "" {
		return jose.PickKey(set, kid, spec)
	}
	var pub crypto.PublicKey
	n := 0
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok || k.KeyUsage() == string(jwk.ForEncryption) {
			continue
		}
		if p, err := jose.KeyFor(k, spec, jwk.KeyOpVerify); err == nil {
			pub = p
			n++
		}
	}
	switch {
	case n == 0:
		return nil, jose.ErrUnknownKid
	case n > 1:
		return nil, errAssertionKidRequired
	}
	return pub, nil
}

// clientKey returns the key of c that verifies an assertion with kid and
// spec: from the registered JWKS (parsed once, cached), or from the
// jwks_uri (cached, fetched again once on an unknown kid within the
// refetch rule).
func (st *assertionSettings) clientKey(ctx context.Context, c *store.Client, kid string, spec jose.Spec) (crypto.PublicKey, error) {
	if len(c.JWKS) > 0 {
		set, err := st.registeredSet(c)
		if err != nil {
			return nil, err
		}
		return clientKeyPick(set, kid, spec)
	}
	set, err := st.uris.keys(ctx, c.JWKSURI, false)
	if err != nil {
		return nil, err
	}
	pub, err := clientKeyPick(set, kid, spec)
	if !errors.Is(err, jose.ErrUnknownKid) {
		return pub, err
	}
	// An unknown kid (or no key for the alg): the client may have rotated
	// its keys.
	if set, err = st.uris.keys(ctx, c.JWKSURI, true); err != nil {
		return nil, err
	}
	return clientKeyPick(set, kid, spec)
}

// parsedSet is a parsed key set, or why it is unusable.
type parsedSet struct {
	set jwk.Set
	err error
}

// registeredSet parses c.JWKS, checked by publicKeySet; the result, good or
// bad, is cached by client id and the hash of the document, so that a new
// registration is parsed again.
func (st *assertionSettings) registeredSet(c *store.Client) (jwk.Set, error) {
	idh, doch := sha256.Sum256([]byte(c.ID)), sha256.Sum256(c.JWKS)
	var key [2 * sha256.Size]byte
	copy(key[:], idh[:])
	copy(key[sha256.Size:], doch[:])
	if p, ok := st.sets.Get(key); ok {
		return p.set, p.err
	}
	set, err := publicKeySet(c.JWKS)
	st.sets.Add(key, parsedSet{set, err})
	return set, err
}

// publicKeySet parses a client's JWK Set document (RFC 7517 §5): at most
// store.MaxClientKeys keys, each a public asymmetric key. A private or
// symmetric key in a client's registration means its secret has been
// shared: the whole set is refused (errAssertionKeys).
func publicKeySet(doc []byte) (jwk.Set, error) {
	if len(doc) > store.MaxClientJWKSBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", errAssertionKeys, store.MaxClientJWKSBytes)
	}
	set, err := jwk.Parse(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: not a JWK Set: %w", errAssertionKeys, err)
	}
	if set.Len() == 0 || set.Len() > store.MaxClientKeys {
		return nil, fmt.Errorf("%w: %d keys, not 1 to %d", errAssertionKeys, set.Len(), store.MaxClientKeys)
	}
	for i := range set.Len() {
		k, _ := set.Key(i)
		if k == nil {
			return nil, fmt.Errorf("%w: key %d unreadable", errAssertionKeys, i)
		}
		if k.KeyType().String() == "oct" {
			return nil, fmt.Errorf("%w: key %d (kid %q) is symmetric", errAssertionKeys, i, k.KeyID())
		}
		if private, err := jwk.IsPrivateKey(k); err != nil || private {
			return nil, fmt.Errorf("%w: key %d (kid %q) is a private key", errAssertionKeys, i, k.KeyID())
		}
	}
	return set, nil
}

// assertionSettings is the state of private_key_jwt: the normalised
// options, the issuer, the caches of key sets.
type assertionSettings struct {
	opts   ClientAssertionOptions
	algs   map[string]jose.Spec
	issuer string
	sets   *lru.Cache[[2 * sha256.Size]byte, parsedSet]
	uris   *jwksURIs
}

// newAssertionSettings makes the private_key_jwt state of a server, or
// says why its options cannot be enforced.
func newAssertionSettings(cfg Config) (*assertionSettings, error) {
	st := &assertionSettings{issuer: cfg.Issuer}
	var err error
	if st.opts, st.algs, err = cfg.ClientAssertion.normalized(); err != nil {
		return nil, err
	}
	st.sets, _ = lru.New[[2 * sha256.Size]byte, parsedSet](jwksSetCacheSize)
	st.uris = newJWKSURIs(st.opts.HTTPClient, cfg.Now)
	return st, nil
}

// clientAuthMethods are the client authentication methods the token
// endpoint (with none, for public clients) and the revocation and
// introspection endpoints accept (RFC 8414 §2).
func (s *Server) clientAuthMethods(withNone bool) []string {
	if s.fapi2() {
		return []string{AuthPrivateKeyJWT}
	}
	m := []string{AuthSecretBasic, AuthSecretPost, AuthPrivateKeyJWT}
	if withNone {
		m = append(m, AuthNone)
	}
	return m
}

// ClientAssertionAlgorithms returns the JWS algorithms a private_key_jwt
// assertion may be signed with, for the metadata's
// token_endpoint_auth_signing_alg_values_supported (RFC 8414 §2) and its
// revocation and introspection counterparts.
func (s *Server) ClientAssertionAlgorithms() []string {
	return slices.Clone(s.assertions.opts.Algorithms)
}
