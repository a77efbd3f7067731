package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Access token formats (Config.AccessTokenFormat).
const (
	// FormatOpaque tokens are random strings (256 bits) kept in the store by
	// hash; resource servers look them up or introspect them.
	FormatOpaque = "opaque"
	// FormatJWT tokens are RFC 9068 JWTs (typ at+jwt) carrying cnf.jkt
	// (RFC 9449 §6.1), signed with Config.SigningKeys; resource servers
	// verify them with the JWKS.
	FormatJWT = "jwt"
)

// Defaults of Config.
const (
	DefaultAccessTokenTTL  = time.Hour
	DefaultRefreshTokenTTL = 24 * time.Hour
	DefaultCodeTTL         = time.Minute
	DefaultMaxBodyBytes    = 16 << 10
)

// Paths are where Server.Mount puts each endpoint, relative to the issuer
// URL; metadata advertises the issuer followed by these paths. For an issuer
// with a path, Mount puts each endpoint under that path, so that it is served
// at the advertised URL: with the issuer https://as.example.com/tenant1 and
// DefaultPaths, the token endpoint is at /tenant1/oauth2/token. Metadata is
// the exception: RFC 8414 §3.1 puts the well-known path between the host and
// the issuer's path, so Mount serves the metadata at Metadata followed by the
// issuer's path, /.well-known/oauth-authorization-server/tenant1.
// Server.MountPaths returns the paths Mount registers.
//
// PushedAuthorization is the pushed authorization request endpoint (RFC
// 9126), mounted only when the server offers it
// ([Server.PushedAuthorizationHandler]).
type Paths struct {
	Token, Authorize, Revoke, Introspect, JWKS, Metadata string
	PushedAuthorization                                  string
}

// DefaultPaths are the conventional paths, for an issuer without a path
// (see Paths for one with a path); Metadata is the well-known URI suffix of
// RFC 8414 §3.
var DefaultPaths = Paths{
	Token:      "/oauth2/token",
	Authorize:  "/oauth2/authorize",
	Revoke:     "/oauth2/revoke",
	Introspect: "/oauth2/introspect",
	JWKS:       "/oauth2/jwks",
	Metadata:   "/.well-known/oauth-authorization-server",

	PushedAuthorization: "/oauth2/par",
}

// ScopePolicy decides the scopes a client gets. requested is what the
// request asked for (nil when it named none); the result is what is granted.
// Return an error wrapping ErrScope to refuse with invalid_scope.
type ScopePolicy func(ctx context.Context, c *store.Client, requested []string) ([]string, error)

// Authenticator authenticates the end user at the authorization endpoint; it
// belongs to the host. It returns the subject, or handled = true when it has
// written the response itself (for example a redirect to a login page). An
// empty subject with handled = false denies the request (access_denied).
type Authenticator func(w http.ResponseWriter, r *http.Request, req *AuthorizationRequest) (subject string, handled bool, err error)

// Config configures [New]. Fields left zero take the documented defaults;
// New validates the whole and refuses what it cannot enforce.
type Config struct {
	// Issuer is the authorization server's identifier and public base URL
	// (RFC 8414 §2): https (or http on a loopback address, for development),
	// no query or fragment. Required.
	Issuer string
	// Store keeps clients, codes, tokens and the proof replay cache.
	// Required.
	Store store.Store
	// DPoP configures proof checking. BaseURL is set to Issuer, when nil
	// ReplayCache to Store, and a zero Quota.PerGrant to
	// dpop.DefaultGrantQuota (proofs are charged to the authenticated
	// client and to the grant they redeem); the rest keeps the dpop
	// package defaults.
	DPoP dpop.VerifierOptions
	// AccessTokenTTL (default 1h), RefreshTokenTTL (default 24h) and
	// CodeTTL (default 1m; at most 10m, RFC 6749 §4.1.2) are lifetimes.
	// A client's own TTLs take precedence over the first two.
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	CodeTTL         time.Duration
	// AccessTokenFormat is FormatOpaque (default) or FormatJWT.
	AccessTokenFormat string
	// SigningKeys holds the private keys for JWT access tokens; required
	// with FormatJWT. The first key signs; each key needs a kid and an
	// alg. The JWKS publishes their public halves. New refuses any key
	// whose tokens the middleware's JWTValidator would refuse (the kit's
	// one JOSE profile, RFC 9068 §2.1, RFC 8725 §3.1): an alg other than
	// ES256, ES384, ES512, EdDSA, Ed25519, PS256, PS384, PS512, RS256,
	// RS384 or RS512 (never none or HMAC); a key whose type or curve does
	// not fit its alg; an RSA key outside 2048 to 4096 bits or with an
	// exponent other than 65537; a public or symmetric key; a use or
	// key_ops that do not allow signing (RFC 7517 §4.2, §4.3).
	SigningKeys jwk.Set
	// Audience is the audience (RFC 9068 §2.2 aud) of the tokens of
	// clients that register no Resources: every resource server that
	// accepts them must answer to one of these identifiers
	// (middleware.Options.Audiences). Clients that register Resources get
	// tokens for those instead (RFC 8707). Each must be a valid resource
	// indicator (store.ValidResource). Default: the issuer.
	Audience []string
	// ResourcePolicy decides the audience of a new grant from the resource
	// parameters (RFC 8707 §2). Default RegisteredResources: the requested
	// resources, or all of the client's registered ones.
	ResourcePolicy ResourcePolicy
	// Claims, when set, adds the host's claims (a tenant, roles…) to each
	// access token: the members of a JWT access token, the Claims of an
	// opaque token's record, and introspection answers (RFC 9068 §2.2.3.1,
	// RFC 7662 §2.2). A registered claim name (iss, sub, aud, exp, nbf, iat,
	// jti, client_id, scope, cnf, auth_time, acr, amr, act, may_act,
	// active, token_type, username), values that do not encode as JSON, or
	// more than MaxClaimsBytes of JSON fail the token request with 500
	// server_error, as does an error: a host's bug never yields a token
	// without the claims it meant to carry.
	Claims ClaimsFunc
	// ScopePolicy decides granted scopes. Default: the requested scopes if
	// the client registered every one of them, or all of its registered
	// scopes when none were requested.
	ScopePolicy ScopePolicy
	// AllowBearer lets clients not registered as DPoP-bound get Bearer
	// tokens when they send no proof. Default false: every token request
	// needs a DPoP proof.
	AllowBearer bool
	// RequirePKCE requires PKCE of confidential clients too. Public clients
	// always need it.
	RequirePKCE bool
	// ClientAssertion configures private_key_jwt client authentication
	// (RFC 7523), for clients registered with keys (store.Client.JWKS or
	// JWKSURI).
	ClientAssertion ClientAssertionOptions
	// RequirePAR makes pushed authorization requests (RFC 9126) the only
	// way to the authorization endpoint: a request without request_uri is
	// refused there, and metadata says so
	// (require_pushed_authorization_requests, RFC 9126 §5). It needs a
	// Store that implements store.PushedRequestStore; New fails otherwise.
	RequirePAR bool
	// PARTTL is how long a pushed authorization request can be used
	// (expires_in, RFC 9126 §2.2): default DefaultPARTTL (60s), at least a
	// second, less than 10 minutes (FAPI 2.0 conformance expects
	// expires_in below 600).
	PARTTL time.Duration
	// Profile selects a security profile: "" (none) or ProfileFAPI2, the
	// FAPI 2.0 Security Profile with DPoP and private_key_jwt. Under
	// ProfileFAPI2: pushed authorization requests are required
	// (RequirePAR, so Store must implement store.PushedRequestStore),
	// clients authenticate with private_key_jwt only (secret and public
	// clients get invalid_client), PKCE S256 is required (RequirePKCE),
	// redirect_uri is required (at PAR), codes live at most 60 s, every
	// token needs a DPoP proof, proofs, client assertions and issued JWTs
	// use PS256, ES256 or EdDSA only (DPoP.Algorithms and
	// ClientAssertion.Algorithms default to those), an assertion's aud is
	// the issuer as a string (ClientAssertion.StrictAudience), every
	// authorization response carries iss and redirects with 303,
	// confidential clients' refresh tokens are not rotated, and metadata
	// says so. New refuses a configuration that contradicts the profile
	// (AllowBearer, a CodeTTL over 60 s, another algorithm listed or
	// signing a JWT, ClientAssertion.LegacyAudience), naming the conflict.
	Profile string
	// Authenticate authenticates end users at the authorization endpoint.
	// Required for the authorization code grant; without it the
	// authorization endpoint answers every request with an error page.
	Authenticate Authenticator
	// Paths are the endpoint paths. Default DefaultPaths; empty fields
	// take the default.
	Paths Paths
	// MaxBodyBytes bounds request bodies (default 16 KiB).
	MaxBodyBytes int64
	// Logger receives one record per refused request and per store
	// failure. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Hooks, when set, observe the token endpoint: ProofChecked (with
	// dpop.EndpointToken), TokenIssued and TokenError, each once per
	// request. New copies the struct. Store calls are observed by wrapping
	// the store before it is set here: Store = store.Instrument(st, hooks).
	Hooks *dpop.Hooks
	// OneRoundTrip lets the client credentials grant, with opaque access
	// tokens, record the proof (RFC 9449 §11.1) and save the access token
	// in one call of Store, when Store implements store.AccessTokenIssuer
	// and is also the replay cache (DPoP.ReplayCache unset, or Store
	// itself): one round trip to a shared store instead of two. The token's
	// record is then made, Claims called included, before the proof is
	// charged and recorded, so Claims may run for a request then refused as
	// a replay or over its quota. Set it when Store is one of the kit's
	// stores, or one given to store.Instrument; a type that embeds a store
	// and overrides Insert or SaveAccessToken inherits an
	// InsertAndSaveAccessToken that bypasses its overrides. Default false:
	// the two calls.
	OneRoundTrip bool

	// issuer, set by normalize, is Store as a store.AccessTokenIssuer when
	// access tokens are opaque and Store is also the verifier's replay
	// cache: the client credentials grant then records the proof and saves
	// the token in one call (RFC 9449 §11.1). Nil otherwise.
	issuer store.AccessTokenIssuer
}

func (c Config) normalize() (Config, error) {
	if c.Issuer == "" {
		return c, errors.New("handlers: Config.Issuer is required")
	}
	iss, err := dpop.NormalizeHTU(c.Issuer)
	if err != nil || strings.ContainsAny(c.Issuer, "?#") || hasUserinfo(c.Issuer) {
		return c, errors.New("handlers: Config.Issuer must be an absolute http(s) URL without userinfo, query or fragment")
	}
	c.Issuer = strings.TrimSuffix(iss, "/")
	if strings.HasPrefix(c.Issuer, "http://") && !loopbackURL(c.Issuer) {
		return c, errors.New("handlers: Config.Issuer must use https (http only on a loopback address)")
	}
	if c.Store == nil {
		return c, errors.New("handlers: Config.Store is required")
	}
	if err := c.applyProfile(); err != nil {
		return c, err
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.AccessTokenTTL, DefaultAccessTokenTTL)
	def(&c.RefreshTokenTTL, DefaultRefreshTokenTTL)
	def(&c.CodeTTL, DefaultCodeTTL)
	if c.AccessTokenTTL < time.Second || c.RefreshTokenTTL < time.Second || c.CodeTTL < time.Second || c.CodeTTL > 10*time.Minute {
		return c, errors.New("handlers: token lifetimes must be at least a second, and CodeTTL at most 10 minutes")
	}
	def(&c.PARTTL, DefaultPARTTL)
	if c.PARTTL < time.Second || c.PARTTL > maxPARTTL {
		return c, errors.New("handlers: PARTTL must be at least a second and less than 10 minutes")
	}
	switch c.AccessTokenFormat {
	case "":
		c.AccessTokenFormat = FormatOpaque
	case FormatOpaque:
	case FormatJWT:
		if c.SigningKeys == nil || c.SigningKeys.Len() == 0 {
			return c, errors.New("handlers: FormatJWT needs SigningKeys")
		}
	default:
		return c, fmt.Errorf("handlers: unknown AccessTokenFormat %q", c.AccessTokenFormat)
	}
	if len(c.Audience) == 0 {
		c.Audience = []string{c.Issuer}
	}
	for _, a := range c.Audience {
		if err := store.ValidResource(a); err != nil {
			return c, fmt.Errorf("handlers: Config.Audience: %w", err)
		}
	}
	c.Audience = slices.Clone(c.Audience)
	if c.ResourcePolicy == nil {
		c.ResourcePolicy = RegisteredResources
	}
	if c.ScopePolicy == nil {
		c.ScopePolicy = RegisteredScopes
	}
	p := &c.Paths
	for _, f := range []struct {
		dst *string
		def string
	}{{&p.Token, DefaultPaths.Token}, {&p.Authorize, DefaultPaths.Authorize}, {&p.Revoke, DefaultPaths.Revoke},
		{&p.Introspect, DefaultPaths.Introspect}, {&p.JWKS, DefaultPaths.JWKS}, {&p.Metadata, DefaultPaths.Metadata},
		{&p.PushedAuthorization, DefaultPaths.PushedAuthorization}} {
		if *f.dst == "" {
			*f.dst = f.def
		}
		if !strings.HasPrefix(*f.dst, "/") || strings.ContainsAny(*f.dst, "?# ") {
			return c, fmt.Errorf("handlers: path %q must start with / and have no query", *f.dst)
		}
	}
	if c.MaxBodyBytes < 0 {
		return c, errors.New("handlers: negative MaxBodyBytes")
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Hooks != nil {
		h := *c.Hooks // the caller's struct may change after New
		c.Hooks = &h
	}
	c.DPoP.BaseURL = c.Issuer
	if c.DPoP.ReplayCache == nil {
		c.DPoP.ReplayCache = c.Store
	}
	c.issuer = nil
	if i, ok := c.Store.(store.AccessTokenIssuer); ok && c.OneRoundTrip && c.AccessTokenFormat == FormatOpaque &&
		store.Same(c.DPoP.ReplayCache, c.Store) {
		c.issuer = i
	}
	if c.DPoP.Now == nil {
		c.DPoP.Now = c.Now
	}
	// A grant at the token endpoint is one user's authorization or one
	// refresh token chain; dpop fills the client's share.
	if c.DPoP.Quota.PerGrant == 0 {
		c.DPoP.Quota.PerGrant = dpop.DefaultGrantQuota
	}
	return c, nil
}

// hasUserinfo reports whether u has a userinfo component (RFC 3986 §3.2.1),
// which no issuer identifier has (RFC 8414 §2).
func hasUserinfo(u string) bool {
	p, err := url.Parse(u)
	return err != nil || p.User != nil
}

// loopbackURL reports whether an http URL names a loopback host: localhost
// or a loopback IP address. (An issuer with userinfo is refused before.)
func loopbackURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	host := p.Hostname()
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// RegisteredScopes is the default ScopePolicy: every requested scope must be
// registered for the client (RFC 6749 §3.3); with none requested the client
// gets all its registered scopes.
func RegisteredScopes(_ context.Context, c *store.Client, requested []string) ([]string, error) {
	if requested == nil {
		return c.Scopes, nil
	}
	for _, s := range requested {
		if !slices.Contains(c.Scopes, s) {
			return nil, ErrScope
		}
	}
	return requested, nil
}
