package middleware

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dpopkit/dpop/internal/jose"
	"github.com/dpopkit/dpop/store"
)

// ErrInvalidToken is the cause of every token refusal: unknown, expired,
// revoked, malformed or not meant for this resource. Validators wrap it.
var ErrInvalidToken = errors.New("middleware: invalid access token")

// ErrValidatorUnavailable wraps failures to check a token at all (a store or
// an authorization server that cannot be reached): the request is refused
// with 503, never let through.
var ErrValidatorUnavailable = errors.New("middleware: token validation unavailable")

// TokenValidator turns an access token into the principal it stands for.
// It returns an error wrapping ErrInvalidToken for a token that must be
// refused, and one wrapping ErrValidatorUnavailable when it cannot decide.
type TokenValidator interface {
	Validate(ctx context.Context, token string) (*Principal, error)
}

// StoreValidator validates opaque access tokens by looking them up, by hash,
// in the store the authorization server writes to (same process, or a shared
// Redis or PostgreSQL). The Principal's Audience is the record's (RFC 8707
// §2), which the middleware checks, and its Claims are the record's Claims
// decoded with encoding/json, registered claim names left out; a record
// whose Claims are not a JSON object is refused (ErrInvalidToken with
// ErrTokenMalformed), never let through without them. The Audience slice is
// the record's own: the kit's stores return a fresh record on every read.
type StoreValidator struct {
	Store store.AccessTokenStore
	// OneRoundTrip lets the middleware read the token and record the
	// request's proof (RFC 9449 §7.1, §11.1) in one call of Store, when
	// Store implements store.AccessTokenUser and is also the replay cache
	// (Options.DPoP.ReplayCache): after a token's first accepted request,
	// the middleware remembers its binding (key, parties, audience,
	// expiry) in a bounded cache and its later requests make only that
	// call, which refuses a token no longer live. Set it when Store is one
	// of the kit's stores, or one given to store.Instrument; a type that
	// embeds a store and overrides GetAccessToken or Insert inherits a
	// UseAccessToken that bypasses its overrides. Every instance of a
	// resource must set it alike (store.AccessTokenUser). Default false:
	// a lookup, then the replay cache.
	OneRoundTrip bool
}

// Validate implements [TokenValidator].
func (v StoreValidator) Validate(ctx context.Context, token string) (*Principal, error) {
	if v.Store == nil {
		return nil, fmt.Errorf("%w: StoreValidator without a Store", ErrValidatorUnavailable)
	}
	t, err := v.Store.GetAccessToken(ctx, store.HashToken(token))
	if err != nil {
		return nil, storeTokenError(err)
	}
	return recordPrincipal(t)
}

// storeTokenError is the validator's error for a store's answer to a token
// lookup: a refusal (ErrInvalidToken) for a token it does not know, expired
// or revoked, unavailability for any other error.
func storeTokenError(err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrRevoked) {
		return fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return fmt.Errorf("%w: %w", ErrValidatorUnavailable, err)
}

// recordPrincipal is the Principal of a stored access token.
func recordPrincipal(t *store.AccessToken) (*Principal, error) {
	claims, err := recordClaims(t.Claims)
	if err != nil {
		return nil, err
	}
	return &Principal{Subject: t.Subject, ClientID: t.ClientID, GrantID: t.GrantID, Scopes: strings.Fields(t.Scope), JKT: t.JKT, ExpiresAt: t.ExpiresAt,
		Audience: t.Audience, Claims: claims}, nil
}

// recordClaims decodes the host's claims of a stored access token (a JSON
// object in compact form, or nil), without the registered names a host
// cannot set (jose.Registered), as the other validators report them; nil
// when there are none. Bytes that are not a JSON object are a refusal: the
// token is not read without the claims its issuer gave it.
func recordClaims(raw []byte) (map[string]any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	// The one strict reading of a JSON object (a member given twice is
	// refused), as for JWT and introspection claims.
	o, err := jose.ParseObject(raw)
	var m map[string]any
	if err == nil {
		m, err = o.HostClaims()
	}
	if err != nil {
		return nil, &tokenRefusal{cause: ErrTokenMalformed, reason: "store: claims are not a JSON object"}
	}
	return m, nil
}
