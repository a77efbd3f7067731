package handlers

import (
	"github.com/dpopkit/dpop"

	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/dpopkit/dpop/store"
)

// Token type hints (RFC 7009 §2.1, RFC 7662 §2.1).
const (
	hintAccessToken  = "access_token"
	hintRefreshToken = "refresh_token"
)

// ErrNotOwner is the cause of a revocation refused because the token was
// issued to another client than the one asking (RFC 7009 §2.1).
var ErrNotOwner = errors.New("handlers: token issued to another client")

// ErrJWTNotRevocable is the cause of refusing to revoke a JWT access token
// (RFC 7009 §2.2.1 unsupported_token_type).
var ErrJWTNotRevocable = errors.New("handlers: JWT access tokens cannot be revoked")

// grantRevocationMargin is added to the end of a grant revocation, so that
// clocks of instances and store that differ a little cannot let a token of
// the grant outlive the revocation.
const grantRevocationMargin = time.Minute

// RevocationHandler is the token revocation endpoint (RFC 7009).
//
// The request is a POST with an application/x-www-form-urlencoded body
// (RFC 7009 §2.1) carrying token and, optionally, token_type_hint. The client
// authenticates as at the token endpoint (RFC 6749 §2.3); a public client is
// identified by its client_id and may revoke the tokens issued to it
// (RFC 7009 §2.1; §5 weighs the risk: whoever names a public client must
// also hold one of its tokens, and revocation only takes access away).
//
// The token is looked up as an access token and as a refresh token, the
// hinted kind first; an unknown hint is ignored (RFC 7009 §2.1).
//
//   - A refresh token revokes its whole grant (RFC 7009 §2.1: the access
//     tokens of the same grant are invalidated too), then the token itself.
//     A refresh token that was already rotated still names its grant, and
//     revoking it revokes the grant as well: the client asked for the access
//     to end.
//   - An opaque access token is deleted from the store. Its refresh token is
//     left alone (RFC 7009 §2.1 makes that optional).
//   - A JWT access token (FormatJWT) cannot be revoked: resource servers
//     verify it locally, and the token carries no grant to revoke. The
//     request is refused with 400 unsupported_token_type (RFC 7009 §2.2.1),
//     so that the client does not believe the token dead; it stays valid,
//     and introspection reports it active, until it expires. Keep their
//     lifetime short; revoking the refresh token stops new ones from being
//     issued, not the ones already out.
//   - A token issued to another client is not revoked, and the request is
//     refused with 400 unauthorized_client, as RFC 7009 §2.1 requires
//     ("the request is refused and the client is informed of the error").
//     A silent 200 would let a client believe that a token is dead while it
//     still works. The refusal does tell a caller that the token is live
//     and someone else's; the caller already holds the token, and the
//     attempt is logged.
//   - An unknown, expired or already revoked token is answered 200, since
//     the client cannot do anything about it (RFC 7009 §2.2).
//
// Success is 200 with the body {} and Cache-Control: no-store. A store
// failure is 503, and the client may retry: the grant is revoked before the
// refresh token is deleted, so a failed revocation of the grant leaves the
// token to be found again, and once the grant is revoked the token is
// refused everywhere (its record, should its deletion fail, stays until it
// expires; a retry answers 200). Errors are
// RFC 6749 §5.2 JSON (RFC 7009 §2.2.1).
func (s *Server) RevocationHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := s.revoke(w, r); e != nil {
			s.writeRefusal(w, r, e)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	})
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) *Error {
	f, e := readForm(w, r, s.cfg.MaxBodyBytes)
	if e != nil {
		return e
	}
	client, e := s.authenticateClient(r, f)
	if e != nil {
		return e
	}
	token, e := f.required("token")
	if e != nil {
		return e
	}
	for _, kind := range lookupOrder(f.get("token_type_hint")) {
		var found bool
		if kind == hintRefreshToken {
			found, e = s.revokeRefreshToken(r, client, token)
		} else {
			found, e = s.revokeAccessToken(r, client, token)
		}
		if e != nil || found {
			return e
		}
	}
	return nil
}

// lookupOrder is the order in which to try the kinds of token: the hinted
// one first; an unknown or absent hint means access token first.
func lookupOrder(hint string) [2]string {
	if hint == hintRefreshToken {
		return [2]string{hintRefreshToken, hintAccessToken}
	}
	return [2]string{hintAccessToken, hintRefreshToken}
}

// notOwner refuses to act on a token of another client.
func notOwner() *Error {
	return badRequest(dpop.CodeUnauthorizedClient, "the token was not issued to this client", ErrNotOwner)
}

// revokeAccessToken revokes token if it is a live access token of client;
// found reports whether it was a live access token at all.
func (s *Server) revokeAccessToken(r *http.Request, client *store.Client, token string) (found bool, _ *Error) {
	ctx := r.Context()
	rec, err := s.tokens.Lookup(ctx, token)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevoked):
		return false, nil
	default:
		return false, s.storeError(r, err)
	}
	if rec.ClientID != client.ID {
		return true, notOwner()
	}
	if s.cfg.AccessTokenFormat != FormatOpaque {
		// A JWT cannot be recalled; see RevocationHandler.
		return true, badRequest(dpop.CodeUnsupportedTokenType, "JWT access tokens cannot be revoked; they expire", ErrJWTNotRevocable)
	}
	if err := s.cfg.Store.RevokeAccessToken(ctx, store.HashToken(token)); err != nil {
		return true, s.storeError(r, err)
	}
	return true, nil
}

// revokeRefreshToken revokes token, and its grant, if it is a refresh token
// of client (live or already rotated); found reports whether it was one.
func (s *Server) revokeRefreshToken(r *http.Request, client *store.Client, token string) (found bool, _ *Error) {
	ctx := r.Context()
	h := store.HashToken(token)
	rec, err := s.cfg.Store.GetRefreshToken(ctx, h)
	switch {
	case err == nil && rec != nil, errors.Is(err, store.ErrConsumed) && rec != nil:
	case err == nil, errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevoked):
		return false, nil
	default:
		return false, s.storeError(r, err)
	}
	if rec.ClientID != client.ID {
		return true, notOwner()
	}
	// The grant first: should revoking it fail, a retry still finds the
	// token; the other way round, a retry would find nothing and the
	// grant's access tokens would live on. Should deleting the token fail
	// after that, the token is already refused with its grant.
	if rec.GrantID != "" {
		if err := s.cfg.Store.RevokeGrant(ctx, rec.GrantID, s.grantRevocationEnd(client, rec)); err != nil {
			return true, s.storeError(r, err)
		}
	}
	if err := s.cfg.Store.RevokeRefreshToken(ctx, h); err != nil {
		return true, s.storeError(r, err)
	}
	return true, nil
}

// grantRevocationEnd is how long a grant revocation must last: past the
// expiry of any token of the grant, whether issued with the server's
// lifetimes or the client's, and past the refresh token's own expiry.
func (s *Server) grantRevocationEnd(client *store.Client, rec *store.RefreshToken) time.Time {
	ttl := max(s.cfg.AccessTokenTTL, s.cfg.RefreshTokenTTL, client.AccessTokenTTL, client.RefreshTokenTTL)
	until := s.cfg.Now().Add(ttl)
	if rec.ExpiresAt.After(until) {
		until = rec.ExpiresAt
	}
	return until.Add(grantRevocationMargin)
}

// writeRefusal logs a refused request (store failures are logged by
// storeError already; a client reaching for another client's token is a
// warning) and writes the error.
func (s *Server) writeRefusal(w http.ResponseWriter, r *http.Request, e *Error) {
	if !errors.Is(e, ErrStore) {
		level := slog.LevelInfo
		if errors.Is(e, ErrNotOwner) {
			level = slog.LevelWarn
		}
		s.cfg.Logger.Log(r.Context(), level, "request refused",
			"path", r.URL.Path, "error", e.Code, "status", e.Status, "cause", e.Err)
	}
	writeError(w, e)
}
