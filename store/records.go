package store

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
)

// Grant types a client may be registered for (Client.GrantTypes): the ones
// the kit implements.
const (
	// GrantAuthorizationCode is the authorization code grant (RFC 6749 §4.1).
	GrantAuthorizationCode = "authorization_code"
	// GrantClientCredentials is the client credentials grant (RFC 6749
	// §4.4), for confidential clients only.
	GrantClientCredentials = "client_credentials"
	// GrantRefreshToken is the refresh token grant (RFC 6749 §6).
	GrantRefreshToken = "refresh_token"
)

// Errors of Client.Validate, which every store's SaveClient returns for a
// client it refuses to register; named after the error codes of RFC 7591
// §3.2.2. Test them with errors.Is.
var (
	// ErrInvalidClientMetadata: the client cannot be registered as it is
	// (no id, an unknown grant type, a public client with the client
	// credentials grant, a negative lifetime, a bad redirect URI).
	ErrInvalidClientMetadata = errors.New("store: invalid client metadata")
	// ErrInvalidRedirectURI: a redirect URI is not an absolute URI, has a
	// fragment (RFC 6749 §3.1.2), or is http or https without a host. It
	// wraps ErrInvalidClientMetadata.
	ErrInvalidRedirectURI = fmt.Errorf("%w: invalid redirect uri", ErrInvalidClientMetadata)
	// ErrInvalidResource: a resource indicator is not an absolute URI, has
	// a fragment or is too long (RFC 8707 §2). It wraps
	// ErrInvalidClientMetadata.
	ErrInvalidResource = fmt.Errorf("%w: invalid resource indicator", ErrInvalidClientMetadata)
)

// MaxResourceLen bounds a resource indicator (RFC 8707 §2), registered or
// requested: a longer one is invalid, so that no request can make the kit
// hold, compare or store an unbounded audience.
const MaxResourceLen = 512

// Client is a registered OAuth client (RFC 6749 §2). Stores refuse to save
// one that Validate refuses.
type Client struct {
	// ID is the client_id.
	ID string
	// SecretHash is HashSecret of the client secret, for a client that
	// authenticates with client_secret_basic or client_secret_post. Empty
	// for a public client (no SecretHash, JWKS or JWKSURI), which
	// authenticates with "none" and must use PKCE.
	SecretHash []byte
	// JWKS is the client's public keys, a JWK Set document (RFC 7517 §5),
	// for private_key_jwt client authentication (RFC 7523 §2.2, OpenID
	// Connect Core §9): the client signs its assertions with one of them.
	// At most one of SecretHash, JWKS and JWKSURI is set.
	JWKS []byte
	// JWKSURI is where the client publishes that JWK Set instead (RFC 7591
	// §2 jwks_uri): an https URL (http only on a loopback host).
	JWKSURI string
	// GrantTypes the client may use: GrantAuthorizationCode,
	// GrantClientCredentials (confidential clients only), GrantRefreshToken.
	GrantTypes []string
	// RedirectURIs registered for the authorization code grant: absolute
	// URIs without a fragment (RFC 6749 §3.1.2), compared exactly (RFC 6749
	// §3.1.2.3).
	RedirectURIs []string
	// Scopes the client may request.
	Scopes []string
	// Resources are the resource indicators (RFC 8707 §2) of the protected
	// resources the client may get tokens for: absolute URIs without a
	// fragment, compared exactly. A token's audience is a subset of them;
	// with no resource parameter, the server's resource policy picks it
	// (by default all of them). A client without Resources cannot use the
	// resource parameter, and its tokens carry the server's default
	// audience (handlers.Config.Audience).
	Resources []string
	// Introspect gives the client the right to call the introspection
	// endpoint (RFC 7662 §2.1): it is a resource server, and it learns
	// only of tokens whose audience includes one of its Resources
	// (RFC 7662 §4). Other clients are refused there.
	Introspect bool
	// DPoPBound is dpop_bound_access_tokens (RFC 9449 §5.2): the client
	// always gets DPoP-bound tokens and a token request without a proof is
	// refused.
	DPoPBound bool
	// AccessTokenTTL and RefreshTokenTTL override the server's lifetimes
	// when positive; zero keeps the server's, and a negative one is refused.
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
}

// Public reports whether the client has no credentials: no secret and no
// keys (RFC 6749 §2.1).
func (c *Client) Public() bool { return len(c.SecretHash) == 0 && !c.KeyAuthenticated() }

// KeyAuthenticated reports whether the client authenticates with
// private_key_jwt (RFC 7523 §2.2): it registered JWKS or JWKSURI.
func (c *Client) KeyAuthenticated() bool { return len(c.JWKS) > 0 || c.JWKSURI != "" }

// Validate reports why the client cannot be registered, or nil. It is the
// one check every store's SaveClient makes (a custom store should too), so
// that a client the token and authorization endpoints could not serve
// correctly is refused when it is saved rather than when it is used. It
// refuses, with an error that wraps ErrInvalidClientMetadata:
//
//   - an empty ID: the client identifier is required (RFC 6749 §2.2);
//   - a grant type other than GrantAuthorizationCode,
//     GrantClientCredentials and GrantRefreshToken (RFC 7591 §2,
//     grant_types: the server supports no other);
//   - GrantClientCredentials for a public client (no SecretHash): that
//     grant is for confidential clients only (RFC 6749 §4.4, §2.1);
//   - a redirect URI that is not an absolute URI, has a fragment, or is
//     http or https without a host (RFC 6749 §3.1.2; RFC 7591 §2,
//     redirect_uris), with ErrInvalidRedirectURI. Custom schemes of native
//     apps (com.example.app:/cb, RFC 8252 §7.1) are absolute URIs;
//   - a SecretHash that is not a HashSecret (32 bytes), or the hash of the
//     empty secret, which would let an empty password authenticate;
//   - more than one of SecretHash, JWKS and JWKSURI; a JWKS that is not a
//     JSON object with a "keys" array of at most MaxClientKeys objects or
//     is larger than MaxClientJWKSBytes (the keys themselves are checked
//     when an assertion is verified); a JWKSURI that is not an absolute
//     https URL (http only on a loopback host) without fragment or
//     userinfo;
//   - a resource that is not an absolute URI, has a fragment or is longer
//     than MaxResourceLen (RFC 8707 §2), with ErrInvalidResource;
//   - Introspect without Resources (such a client could see no token) or
//     for a public client (RFC 7662 §2.1: the caller is authenticated);
//   - a negative AccessTokenTTL or RefreshTokenTTL.
func (c *Client) Validate() error {
	if c == nil {
		return fmt.Errorf("%w: no client", ErrInvalidClientMetadata)
	}
	if c.ID == "" {
		return fmt.Errorf("%w: client without id", ErrInvalidClientMetadata)
	}
	if len(c.SecretHash) > 0 && (len(c.SecretHash) != sha256.Size || subtle.ConstantTimeCompare(c.SecretHash, HashSecret("")) == 1) {
		return fmt.Errorf("%w: SecretHash is not the HashSecret of a non-empty secret", ErrInvalidClientMetadata)
	}
	if err := c.validKeys(); err != nil {
		return err
	}
	for _, g := range c.GrantTypes {
		switch g {
		case GrantAuthorizationCode, GrantRefreshToken:
		case GrantClientCredentials:
			if c.Public() {
				return fmt.Errorf("%w: a public client (no secret) cannot use the %s grant", ErrInvalidClientMetadata, g)
			}
		default:
			return fmt.Errorf("%w: unknown grant type %q", ErrInvalidClientMetadata, g)
		}
	}
	for _, u := range c.RedirectURIs {
		if err := validRedirectURI(u); err != nil {
			return fmt.Errorf("%w %q: %s", ErrInvalidRedirectURI, u, err)
		}
	}
	for _, r := range c.Resources {
		if err := ValidResource(r); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidResource, err)
		}
	}
	if c.Introspect && (len(c.Resources) == 0 || c.Public()) {
		return fmt.Errorf("%w: Introspect needs Resources and a secret (RFC 7662 §2.1)", ErrInvalidClientMetadata)
	}
	if c.AccessTokenTTL < 0 || c.RefreshTokenTTL < 0 {
		return fmt.Errorf("%w: negative token lifetime", ErrInvalidClientMetadata)
	}
	return nil
}

// ValidResource says why r cannot be a resource indicator, or returns nil:
// it must be an absolute URI without a fragment (RFC 8707 §2), of at most
// MaxResourceLen bytes, in ASCII without spaces or control characters
// (RFC 3986 §2: other characters are percent-encoded). It is the one
// rule for registered resources (Client.Validate) and requested ones (the
// resource parameter, handlers). The error never holds r.
func ValidResource(r string) error {
	if len(r) > MaxResourceLen {
		return errors.New("resource indicator too long")
	}
	if strings.ContainsFunc(r, func(c rune) bool { return c <= ' ' || c >= 0x7f }) {
		// A URI is ASCII (RFC 3986 §2); other characters are
		// percent-encoded.
		return errors.New("resource indicator with a space, control or non-ASCII character")
	}
	if strings.Contains(r, "#") {
		return errors.New("resource indicator with a fragment")
	}
	p, err := url.Parse(r)
	if err != nil || !p.IsAbs() {
		return errors.New("resource indicator is not an absolute URI")
	}
	return nil
}

// Bounds of a client's registered JWK Set (Client.JWKS).
const (
	MaxClientKeys      = 16
	MaxClientJWKSBytes = 64 << 10
)

// validKeys checks the credentials of a private_key_jwt client: one kind of
// credential, a JWK Set document of bounded size, or a usable jwks_uri.
func (c *Client) validKeys() error {
	n := 0
	for _, set := range []bool{len(c.SecretHash) > 0, len(c.JWKS) > 0, c.JWKSURI != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("%w: more than one of SecretHash, JWKS and JWKSURI", ErrInvalidClientMetadata)
	}
	if len(c.JWKS) > 0 && !validJWKS(c.JWKS) {
		return fmt.Errorf("%w: JWKS is not a JWK Set of 1 to %d keys within %d bytes", ErrInvalidClientMetadata, MaxClientKeys, MaxClientJWKSBytes)
	}
	if c.JWKSURI != "" {
		if strings.ContainsFunc(c.JWKSURI, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			return fmt.Errorf("%w: JWKSURI must be ASCII without spaces (RFC 3986 §2)", ErrInvalidClientMetadata)
		}
		p, err := url.Parse(c.JWKSURI)
		ok := err == nil && p.Host != "" && p.User == nil && !strings.Contains(c.JWKSURI, "#") &&
			(p.Scheme == "https" || p.Scheme == "http" && loopbackHost(p.Hostname()))
		if !ok {
			return fmt.Errorf("%w: JWKSURI must be an https URL (http only on a loopback host)", ErrInvalidClientMetadata)
		}
	}
	return nil
}

// validJWKS reports whether doc is a JWK Set document (RFC 7517 §5) of
// bounded size: one JSON object whose "keys" member, matched exactly (JWK
// member names are case-sensitive), is an array of 1 to MaxClientKeys
// objects, no member given twice.
func validJWKS(doc []byte) bool {
	if len(doc) > MaxClientJWKSBytes {
		return false
	}
	o, err := jose.ParseObject(doc)
	if err != nil {
		return false
	}
	var keys []map[string]json.RawMessage
	if json.Unmarshal(o["keys"], &keys) != nil || len(keys) == 0 || len(keys) > MaxClientKeys {
		return false
	}
	for _, k := range keys {
		if k == nil {
			return false
		}
	}
	return true
}

// loopbackHost reports whether host is localhost or a loopback IP address.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// validRedirectURI says why u cannot be a redirection endpoint, or returns
// nil.
func validRedirectURI(u string) error {
	// An empty fragment ("…/cb#") is a fragment component too, which
	// url.URL does not tell apart from none.
	if strings.Contains(u, "#") {
		return errors.New("has a fragment")
	}
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return errors.New("is not a URI")
	case !p.IsAbs():
		return errors.New("is not absolute")
	case (p.Scheme == "https" || p.Scheme == "http") && p.Host == "":
		return errors.New("has no host")
	}
	return nil
}

// Clone returns a deep copy.
func (c *Client) Clone() *Client {
	d := *c
	d.SecretHash = slices.Clone(c.SecretHash)
	d.JWKS = slices.Clone(c.JWKS)
	d.GrantTypes = slices.Clone(c.GrantTypes)
	d.RedirectURIs = slices.Clone(c.RedirectURIs)
	d.Scopes = slices.Clone(c.Scopes)
	d.Resources = slices.Clone(c.Resources)
	return &d
}

// AuthorizationCode is an issued authorization code (RFC 6749 §4.1.2), keyed
// by the TokenHash of the code.
type AuthorizationCode struct {
	// GrantID identifies the authorization: every token issued from this
	// code carries it, so that all of them can be revoked together.
	GrantID     string
	ClientID    string
	RedirectURI string
	Scope       string
	Subject     string
	// CodeChallenge and CodeChallengeMethod are the PKCE parameters
	// (RFC 7636 §4.3); empty when none were sent.
	CodeChallenge       string
	CodeChallengeMethod string
	// DPoPJKT is the dpop_jkt of the authorization request (RFC 9449 §10):
	// the code may only be redeemed with a proof of that key. Empty when
	// none was sent.
	DPoPJKT string
	// Resources is the audience the authorization grants (RFC 8707 §2.1):
	// the tokens redeemed from the code are for these resources or a
	// subset of them.
	Resources []string
	ExpiresAt time.Time
}

// AccessToken is an issued opaque access token, keyed by the TokenHash of
// the token.
type AccessToken struct {
	GrantID  string
	ClientID string
	Subject  string
	Scope    string
	// JKT is the thumbprint of the key the token is bound to: an access
	// token's cnf.jkt (RFC 9449 §6); for a refresh token, the key of a
	// public client that every refresh must be proven with (RFC 9449 §5).
	// Empty for a Bearer access token and for the refresh tokens of
	// confidential clients.
	JKT string
	// Audience names the resources the token is for (RFC 8707, RFC 9068
	// §2.2 aud): a resource server accepts it only if one of its
	// identifiers is here. For a refresh token, the audience of the grant,
	// which a refresh may narrow (RFC 8707 §2.2).
	Audience []string
	// Claims are the host's claims (handlers.Config.Claims), a JSON object
	// in compact form, or nil; never a registered claim name. Stores keep
	// the bytes as they are.
	Claims    []byte
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// RefreshToken is an issued refresh token, keyed by the TokenHash of the
// token. It holds what an access token record holds; a store may keep both
// in tables of one shape.
type RefreshToken AccessToken

// PushedRequest is a pushed authorization request (RFC 9126 §2), keyed by the
// TokenHash of its request_uri. The authorization endpoint reads it when the
// client sends the request_uri (the pushed parameters win over the query,
// RFC 9126 §4) and consumes it once the authorization completes.
type PushedRequest struct {
	// ClientID is the client that pushed it; only that client may use the
	// request_uri (RFC 9126 §4).
	ClientID string
	// Params are the pushed authorization request parameters,
	// form-encoded (url.Values.Encode), client authentication removed.
	Params string
	// DPoPJKT is the key the code will be bound to: the dpop_jkt parameter
	// or the thumbprint of the DPoP proof sent to the PAR endpoint
	// (RFC 9449 §10.1); empty for none.
	DPoPJKT   string
	ExpiresAt time.Time
}
