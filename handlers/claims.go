package handlers

import (
	"context"
	"errors"
	"net/http"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/jose"
	"github.com/dpopkit/dpop/store"
)

// MaxClaimsBytes bounds the JSON of the host's claims on one token
// (Config.Claims): they travel in every JWT access token and every
// introspection answer, and are stored with every opaque token.
const MaxClaimsBytes = 4 << 10

// ClaimsFunc returns the host's claims for an access token about to be
// issued to c (Config.Claims): t holds its subject, scope, audience and
// grant; it must not be changed. Nil or empty adds nothing.
type ClaimsFunc func(ctx context.Context, c *store.Client, t *store.AccessToken) (map[string]any, error)

// hostClaims runs Config.Claims for t and returns the claims' compact JSON
// (nil for none), refusing registered names, values that do not encode and
// more than MaxClaimsBytes (jose.CheckHostClaims).
func (s *Server) hostClaims(ctx context.Context, c *store.Client, t *store.AccessToken) ([]byte, *Error) {
	if s.cfg.Claims == nil {
		return nil, nil
	}
	m, err := s.cfg.Claims(ctx, c, t)
	if err == nil {
		var b []byte
		if b, err = jose.CheckHostClaims(m, MaxClaimsBytes); err == nil {
			return b, nil
		}
	}
	return nil, oauthError(http.StatusInternalServerError, dpop.CodeServerError, "the server could not make the token's claims", errors.Join(ErrClaims, err))
}
