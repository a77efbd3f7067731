package middleware

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Principal is who a request acts for, from its access token.
type Principal struct {
	// Subject is the resource owner (sub); for client credentials, the
	// client.
	Subject string
	// ClientID is the client the token was issued to.
	ClientID string
	// GrantID is the authorization grant the token was issued under, when
	// the validator knows it (StoreValidator does); every token of one
	// user's authorization shares it. The middleware charges proofs to it
	// (dpop.Quota), so that refreshing for new tokens gives no new share.
	GrantID string
	// Scopes are the token's scopes.
	Scopes []string
	// JKT is the thumbprint the token is bound to (cnf.jkt, RFC 9449 §6);
	// the request's proof was made with that key. Empty for a Bearer token.
	JKT string
	// ExpiresAt is when the token expires.
	ExpiresAt time.Time
}

// HasScope reports whether the principal holds scope.
func (p *Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

type principalKey struct{}

// PrincipalFrom returns the principal the middleware put in ctx, and false
// when there is none (the route is not behind the middleware). It never
// panics.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	if ctx == nil {
		return nil, false
	}
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// WithPrincipal returns a copy of ctx carrying p, for tests of handlers that
// sit behind the middleware.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// splitScope splits a scope value on the space character, the only
// separator of RFC 6749 §3.3; other whitespace stays inside a scope token,
// which then matches no required scope.
func splitScope(scope string) []string {
	return strings.FieldsFunc(scope, func(r rune) bool { return r == ' ' })
}
