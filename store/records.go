package store

import (
	"slices"
	"time"
)

// Client is a registered OAuth client (RFC 6749 §2).
type Client struct {
	// ID is the client_id.
	ID string
	// SecretHash is HashSecret of the client secret; empty for a public
	// client, which authenticates with "none" and must use PKCE.
	SecretHash []byte
	// GrantTypes the client may use: "authorization_code",
	// "client_credentials", "refresh_token".
	GrantTypes []string
	// RedirectURIs registered for the authorization code grant; compared
	// exactly (RFC 6749 §3.1.2.3).
	RedirectURIs []string
	// Scopes the client may request.
	Scopes []string
	// DPoPBound is dpop_bound_access_tokens (RFC 9449 §5.2): the client
	// always gets DPoP-bound tokens and a token request without a proof is
	// refused.
	DPoPBound bool
	// AccessTokenTTL and RefreshTokenTTL override the server's lifetimes
	// when non-zero.
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
}

// Public reports whether the client has no secret (RFC 6749 §2.1).
func (c *Client) Public() bool { return len(c.SecretHash) == 0 }

// Clone returns a deep copy.
func (c *Client) Clone() *Client {
	d := *c
	d.SecretHash = slices.Clone(c.SecretHash)
	d.GrantTypes = slices.Clone(c.GrantTypes)
	d.RedirectURIs = slices.Clone(c.RedirectURIs)
	d.Scopes = slices.Clone(c.Scopes)
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
	DPoPJKT   string
	ExpiresAt time.Time
}

// AccessToken is an issued opaque access token, keyed by the TokenHash of
// the token.
type AccessToken struct {
	GrantID  string
	ClientID string
	Subject  string
	Scope    string
	// JKT is the thumbprint the token is bound to (cnf.jkt, RFC 9449 §6);
	// empty for a Bearer token.
	JKT       string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// RefreshToken is an issued refresh token, keyed by the TokenHash of the
// token.
type RefreshToken struct {
	GrantID  string
	ClientID string
	Subject  string
	Scope    string
	// JKT binds the refresh token of a public client to its DPoP key
	// (RFC 9449 §5); every refresh must be proven with that key. Empty for
	// confidential clients.
	JKT       string
	IssuedAt  time.Time
	ExpiresAt time.Time
}
