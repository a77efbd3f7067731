package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/jose"
	"github.com/dpopkit/dpop/store"
)

// introspection is the body of an RFC 7662 §2.2 introspection response. An
// inactive token is reported as {"active":false} and nothing else, so that
// the response tells nothing about why (RFC 7662 §2.2, §4).
type introspection struct {
	Active   bool   `json:"active"`
	ClientID string `json:"client_id,omitempty"`
	Subject  string `json:"sub,omitempty"`
	Scope    string `json:"scope,omitempty"`
	Expiry   int64  `json:"exp,omitempty"`
	IssuedAt int64  `json:"iat,omitempty"`
	// TokenType is "DPoP" for an access token bound to a key (RFC 9449
	// §6.2) and "Bearer" otherwise; absent for a refresh token, since the
	// member names an access token type (RFC 7662 §2.2).
	TokenType string `json:"token_type,omitempty"`
	Issuer    string `json:"iss,omitempty"`
	// Cnf is the key binding (cnf.jkt, RFC 9449 §6.2), absent for an
	// unbound token.
	Cnf *cnf `json:"cnf,omitempty"`
	// Audience is the part of the token's audience the asking resource
	// server answers to (RFC 7662 §2.2 aud, §4: no more than it needs).
	Audience []string `json:"aud,omitempty"`
	// claims are the host's claims (Config.Claims), compact JSON, added
	// after the members above.
	claims []byte
}

// MarshalJSON writes the members, then the host's claims (RFC 7662 §2.2
// allows more members; Config.Claims cannot name one of these).
func (i *introspection) MarshalJSON() ([]byte, error) {
	type members introspection
	b, err := json.Marshal((*members)(i))
	if err != nil {
		return nil, err
	}
	return jose.AppendMembers(b, i.claims), nil
}

// IntrospectionHandler is the token introspection endpoint (RFC 7662).
//
// The request is a POST with an application/x-www-form-urlencoded body
// carrying token and, optionally, token_type_hint (RFC 7662 §2.1; an unknown
// hint is ignored). Only resource servers may introspect (RFC 7662 §2.1
// requires authorization, and §4 warns against letting anyone probe
// tokens): a client that fails authentication, or a public one, is refused
// with 401 invalid_client; an authenticated client not registered with
// store.Client.Introspect with 403 unauthorized_client. A resource server
// learns only of the tokens meant for it (RFC 7662 §4, RFC 8707): a token
// whose audience includes none of its store.Client.Resources is
// {"active":false}, like an unknown one, and the aud of an active answer
// holds only the resources it shares with the asking client.
//
// The token is looked up as an access token (in the store, or verified as a
// JWT with FormatJWT) and as a refresh token, the hinted kind first. A live
// token is described by active, client_id, sub, scope, exp, iat, iss and
// aud, plus cnf.jkt when it is bound to a key (RFC 9449 §6.2) and the host's
// claims of an access token (Config.Claims); an access token also gets
// token_type, "DPoP" when bound and "Bearer" otherwise. Anything
// else (unknown, expired, revoked, a rotated refresh token, a JWT that does
// not verify) is exactly {"active":false}. A JWT access token stays active
// until it expires even after a revocation request (see
// [Server.RevocationHandler]).
//
// A store failure is 503 and never {"active":false}. "Inactive" is a
// definite statement about the token, which the resource server may cache,
// act upon (end a session, make the user log in again) or report; an outage
// must look like one. Failing closed here means refusing to answer, which
// the resource server turns into a refusal of its own request. Every answer
// carries Cache-Control: no-store.
func (s *Server) IntrospectionHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, e := s.introspect(w, r)
		if e != nil {
			s.writeRefusal(w, r, e)
			return
		}
		if !resp.Active {
			// Exactly {"active":false}, whatever else the value holds.
			resp = &introspection{}
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

func (s *Server) introspect(w http.ResponseWriter, r *http.Request) (*introspection, *Error) {
	f, e := readForm(w, r, s.cfg.MaxBodyBytes)
	if e != nil {
		return nil, e
	}
	client, e := s.authenticateClient(r, f)
	if e != nil {
		return nil, e
	}
	switch {
	case client.Public():
		return nil, s.clientAuthFailed(false, ErrClientAuth)
	case !client.Introspect:
		return nil, oauthError(http.StatusForbidden, dpop.CodeUnauthorizedClient, "the client may not introspect tokens", ErrIntrospect)
	}
	token, e := f.required("token")
	if e != nil {
		return nil, e
	}
	for _, kind := range lookupOrder(f.get("token_type_hint")) {
		var resp *introspection
		if kind == hintRefreshToken {
			resp, e = s.introspectRefreshToken(r, client, token)
		} else {
			resp, e = s.introspectAccessToken(r, client, token)
		}
		if e != nil || resp != nil {
			return resp, e
		}
	}
	return &introspection{}, nil
}

// introspectAccessToken describes token if it is a live access token, and
// returns nil otherwise.
func (s *Server) introspectAccessToken(r *http.Request, rs *store.Client, token string) (*introspection, *Error) {
	rec, err := s.tokens.Lookup(r.Context(), token)
	switch {
	case err == nil && rec != nil:
	case err == nil, errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevoked):
		return nil, nil
	default:
		return nil, s.storeError(r, err)
	}
	resp := s.describe(rs, (*store.RefreshToken)(rec))
	if resp == nil {
		return nil, nil
	}
	resp.claims = rec.Claims
	resp.TokenType = TokenTypeBearer
	if rec.JKT != "" {
		resp.TokenType = TokenTypeDPoP
	}
	return resp, nil
}

// introspectRefreshToken describes token if it is a live refresh token
// (not rotated), and returns nil otherwise.
func (s *Server) introspectRefreshToken(r *http.Request, rs *store.Client, token string) (*introspection, *Error) {
	rec, err := s.cfg.Store.GetRefreshToken(r.Context(), store.HashToken(token))
	switch {
	case err == nil && rec != nil:
	case err == nil, errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevoked), errors.Is(err, store.ErrConsumed):
		return nil, nil
	default:
		return nil, s.storeError(r, err)
	}
	return s.describe(rs, rec), nil
}

// live reports whether a record expiring at exp is still usable; stores
// check expiry too, this guards against one that reclaims lazily.
func (s *Server) live(exp time.Time) bool {
	return !exp.IsZero() && s.cfg.Now().Before(exp)
}

// describe is the answer to resource server rs about a live token t, or nil
// when t has expired or is not meant for rs: its audience includes none of
// rs's resources (RFC 7662 §4).
func (s *Server) describe(rs *store.Client, t *store.RefreshToken) *introspection {
	var aud []string
	for _, a := range t.Audience {
		if slices.Contains(rs.Resources, a) && !slices.Contains(aud, a) {
			aud = append(aud, a)
		}
	}
	if len(aud) == 0 || !s.live(t.ExpiresAt) {
		return nil
	}
	resp := &introspection{
		Active: true, ClientID: t.ClientID, Subject: t.Subject, Scope: t.Scope,
		Expiry: t.ExpiresAt.Unix(), Issuer: s.cfg.Issuer, Audience: aud,
	}
	if !t.IssuedAt.IsZero() {
		resp.IssuedAt = t.IssuedAt.Unix()
	}
	if t.JKT != "" {
		resp.Cnf = &cnf{JKT: t.JKT}
	}
	return resp
}
