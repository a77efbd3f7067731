package middleware

import (
	"context"
	"maps"
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
	// Audience is the token's audience (aud, RFC 9068 §2.2, RFC 7519
	// §4.1.3; RFC 8707 §2): the resources it is meant for. The middleware
	// has checked that it names one of Options.Audiences. nil when the
	// token has none (and then the middleware refused it).
	Audience []string
	// Claims are the host's claims: the members of a JWT access token or
	// of an introspection answer (RFC 7662 §2.2) that are not registered
	// claims (the JWT claims of RFC 7519 §4.1 and RFC 9068 §2.2, cnf,
	// act, may_act, and the members of RFC 7662 §2.2), or the decoded
	// Claims of a stored token record; values are encoding/json's types
	// (a number is a float64). nil when there are none. The map is the
	// caller's own, but its values may be shared with a validator's
	// cache: do not modify nested maps or slices.
	Claims map[string]any
}

// detach gives p its own Scopes, Audience and Claims, so that a holder of
// one copy of a cached principal cannot change another: the two slices
// share one new array, each capped at its length so that an append to one
// cannot write into the other; Claims is copied shallowly. nil stays nil,
// and a principal without scopes, audience or claims costs no allocation.
func (p *Principal) detach() {
	s, a := len(p.Scopes), len(p.Audience)
	if s+a > 0 {
		buf := make([]string, s+a)
		copy(buf, p.Scopes)
		copy(buf[s:], p.Audience)
		if p.Scopes != nil {
			p.Scopes = buf[:s:s]
		}
		if p.Audience != nil {
			p.Audience = buf[s : s+a : s+a]
		}
	} else {
		// Empty but perhaps with capacity: an append must not reach the
		// array behind it.
		if p.Scopes != nil {
			p.Scopes = p.Scopes[:0:0]
		}
		if p.Audience != nil {
			p.Audience = p.Audience[:0:0]
		}
	}
	p.Claims = maps.Clone(p.Claims)
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
