package store

import (
	"context"
	"time"

	"github.com/dpopkit/dpop"
)

// ClientStore holds the registered clients (RFC 6749 §2).
type ClientStore interface {
	// GetClient returns the client with that id, or ErrNotFound.
	GetClient(ctx context.Context, id string) (*Client, error)
	// SaveClient registers c, replacing any client with the same id. It
	// refuses, with the error of c.Validate, a client that Validate refuses
	// (and changes nothing).
	SaveClient(ctx context.Context, c *Client) error
}

// CodeStore holds authorization codes (RFC 6749 §4.1.2), keyed by the hash of
// the code.
type CodeStore interface {
	// SaveCode stores a code until code.ExpiresAt.
	SaveCode(ctx context.Context, h TokenHash, code *AuthorizationCode) error
	// GetCode returns a code without redeeming it, with the errors of
	// ConsumeCode: ErrNotFound when unknown, ErrExpired when expired, and
	// ErrConsumed with the record once redeemed. The token endpoint checks
	// a code this way (client, redirect_uri, PKCE, dpop_jkt) before the
	// request may take any shared capacity, and redeems it with
	// ConsumeCode only after every other check passed, so that a request
	// that is refused spends nothing (RFC 6749 §4.1.3).
	GetCode(ctx context.Context, h TokenHash) (*AuthorizationCode, error)
	// ConsumeCode redeems a code exactly once: of any number of concurrent
	// calls, one gets the record. Later calls get the record and
	// ErrConsumed until the code expires; an unknown code gives ErrNotFound,
	// an expired one ErrExpired.
	ConsumeCode(ctx context.Context, h TokenHash) (*AuthorizationCode, error)
}

// AccessTokenStore holds opaque access tokens, keyed by the hash of the token.
type AccessTokenStore interface {
	// SaveAccessToken stores a token until t.ExpiresAt.
	SaveAccessToken(ctx context.Context, h TokenHash, t *AccessToken) error
	// GetAccessToken returns a live token: ErrNotFound when unknown or
	// revoked, ErrExpired when expired, ErrRevoked when its grant was
	// revoked.
	GetAccessToken(ctx context.Context, h TokenHash) (*AccessToken, error)
	// RevokeAccessToken deletes a token; revoking an unknown token is not
	// an error (RFC 7009 §2.2).
	RevokeAccessToken(ctx context.Context, h TokenHash) error
}

// RefreshTokenStore holds refresh tokens, keyed by the hash of the token.
type RefreshTokenStore interface {
	// SaveRefreshToken stores a token until t.ExpiresAt.
	SaveRefreshToken(ctx context.Context, h TokenHash, t *RefreshToken) error
	// GetRefreshToken returns a live token, with the errors of
	// GetAccessToken, and ErrConsumed (with the record) once it was rotated.
	GetRefreshToken(ctx context.Context, h TokenHash) (*RefreshToken, error)
	// RotateRefreshToken atomically consumes the token old and stores next
	// under h: of any number of concurrent rotations of old, exactly one
	// succeeds and returns old's record. The others get ErrConsumed and
	// old's record; an unknown, expired or revoked old gets the error
	// GetRefreshToken would give, and nothing is stored.
	//
	// A consumed token is kept, so that its reuse is recognised (RFC 9700
	// §4.14.2), but only the ConsumedRefreshTokensPerGrant most recently
	// consumed tokens of a grant: a rotation forgets the grant's older
	// consumed tokens (they become unknown, ErrNotFound), so that one
	// grant's rotations cannot fill a table. The handlers give every
	// refresh token a GrantID and rotate one chain per grant; a store may
	// count per chain of rotations instead (the memory store does), which
	// is the same for them. Tokens saved without a GrantID are outside the
	// rule.
	RotateRefreshToken(ctx context.Context, old, h TokenHash, next *RefreshToken) (*RefreshToken, error)
	// RevokeRefreshToken deletes a token; revoking an unknown token is not
	// an error (RFC 7009 §2.2).
	RevokeRefreshToken(ctx context.Context, h TokenHash) error
}

// ConsumedRefreshTokensPerGrant is how many rotated refresh tokens of one
// grant a store remembers for reuse detection (RFC 9700 §4.14.2): exactly
// this many, the most recent. A rotated token older than that is forgotten
// and its reuse is refused as an unknown token, without revoking the grant.
// The bound keeps a grant's records at ConsumedRefreshTokensPerGrant + 1
// however often it is rotated.
const ConsumedRefreshTokensPerGrant = 8

// GrantStore revokes everything issued from one authorization grant: when a
// code is redeemed twice (RFC 6749 §4.1.2), when a rotated refresh token is
// used again (RFC 9700 §4.14.2), or when a refresh token is revoked
// (RFC 7009 §2.1).
type GrantStore interface {
	// RevokeGrant makes every access and refresh token of grantID, stored
	// before or after the call, unusable (ErrRevoked) until at least until,
	// which the caller sets past the expiry of any token of the grant.
	RevokeGrant(ctx context.Context, grantID string, until time.Time) error
}

// PushedRequestStore holds pushed authorization requests (RFC 9126), keyed
// by the hash of their request_uri. It is a narrow interface of its own: the
// handlers use it when Config.Store implements it (every store of the kit
// does), and pushed authorization requests are off otherwise.
type PushedRequestStore interface {
	// SavePushedRequest stores r until r.ExpiresAt.
	SavePushedRequest(ctx context.Context, h TokenHash, r *PushedRequest) error
	// GetPushedRequest returns a live request without consuming it (the
	// user may load the authorization page twice before logging in):
	// ErrNotFound when unknown, ErrExpired when expired, ErrConsumed (with
	// the record) once consumed.
	GetPushedRequest(ctx context.Context, h TokenHash) (*PushedRequest, error)
	// ConsumePushedRequest uses a request exactly once: of any number of
	// concurrent calls, one gets the record; the others get ErrConsumed
	// (with the record), as do later calls until it expires.
	ConsumePushedRequest(ctx context.Context, h TokenHash) (*PushedRequest, error)
}

// Store is everything the handlers and the middleware need, in one value: the
// per-concern interfaces above and the proof replay cache of the dpop package
// (RFC 9449 §11.1).
//
// Records cross the interface by copy: a store keeps none of the slices it
// is given, and every record it returns is the caller's own (the middleware
// hands a token's Audience to request handlers), as adaptertest checks.
type Store interface {
	ClientStore
	CodeStore
	AccessTokenStore
	RefreshTokenStore
	GrantStore
	dpop.ReplayCache
}
