package middleware

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
// Redis or PostgreSQL).
type StoreValidator struct {
	Store store.AccessTokenStore
}

// Validate implements [TokenValidator].
func (v StoreValidator) Validate(ctx context.Context, token string) (*Principal, error) {
	if v.Store == nil {
		return nil, fmt.Errorf("%w: StoreValidator without a Store", ErrValidatorUnavailable)
	}
	t, err := v.Store.GetAccessToken(ctx, store.HashToken(token))
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevoked):
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrValidatorUnavailable, err)
	}
	return &Principal{Subject: t.Subject, ClientID: t.ClientID, GrantID: t.GrantID, Scopes: strings.Fields(t.Scope), JKT: t.JKT, ExpiresAt: t.ExpiresAt}, nil
}
