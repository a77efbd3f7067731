package handlers

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// Grant types (RFC 6749 §4.1.3, §4.4.2, §6): the store's, which client
// registration validates against.
const (
	GrantAuthorizationCode = store.GrantAuthorizationCode
	GrantClientCredentials = store.GrantClientCredentials
	GrantRefreshToken      = store.GrantRefreshToken
)

// Token types of a token response (RFC 9449 §5, RFC 6750) and of an
// introspection answer (RFC 7662 §2.2, RFC 9449 §6.2).
const (
	TokenTypeDPoP   = "DPoP"
	TokenTypeBearer = "Bearer"
)

// tokenResponse is a successful token response (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// TokenHandler is the token endpoint (RFC 6749 §3.2, RFC 9449 §5). It
// accepts POST application/x-www-form-urlencoded requests of the
// client_credentials, authorization_code and refresh_token grants, with
// client_secret_basic, client_secret_post or none (public clients), and binds
// the access token it issues to the key of the request's DPoP proof. Every
// refusal is an RFC 6749 §5.2 JSON error; every response carries
// Cache-Control: no-store, and a fresh DPoP-Nonce when nonces are on.
func (s *Server) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var who requester
		resp, e := s.token(w, r, &who)
		if nonce, err := s.verifier.Nonce(r.Context()); err == nil && nonce != "" && (e == nil || e.Nonce == "") {
			w.Header().Set("DPoP-Nonce", nonce)
		}
		if e != nil {
			s.cfg.Logger.InfoContext(r.Context(), "token request refused",
				append([]any{"error", e.Code, "client_id", who.clientID, "grant_type", who.grantType}, dpop.LogAttrs(e.Err)...)...)
			if h := s.cfg.Hooks; h != nil && h.TokenError != nil {
				h.TokenError(dpop.TokenErrorEvent{GrantType: who.grantType, Code: e.Code, Status: e.Status})
			}
			writeError(w, e)
			return
		}
		if h := s.cfg.Hooks; h != nil && h.TokenIssued != nil {
			h.TokenIssued(dpop.TokenEvent{GrantType: who.grantType, Format: s.cfg.AccessTokenFormat, DPoPBound: resp.TokenType == TokenTypeDPoP})
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

// requester is what the log of a refused token request says of who asked:
// the authenticated client (empty before authentication succeeds) and the
// grant type, when it is one the endpoint knows.
type requester struct{ clientID, grantType string }

func (s *Server) token(w http.ResponseWriter, r *http.Request, who *requester) (*tokenResponse, *Error) {
	f, e := readForm(w, r, s.cfg.MaxBodyBytes)
	if e != nil {
		return nil, e
	}
	grant := f.get("grant_type")
	switch grant {
	case GrantClientCredentials, GrantAuthorizationCode, GrantRefreshToken:
		who.grantType = grant
	case "":
	default:
		who.grantType = "unsupported" // the value is the client's: not logged
	}
	client, pending, e := s.authenticateClientLater(r, f)
	if e != nil {
		return nil, e
	}
	who.clientID = client.ID
	switch grant {
	case "":
		return nil, badRequest(dpop.CodeInvalidRequest, "grant_type is required", ErrMissingParam)
	case GrantClientCredentials, GrantAuthorizationCode, GrantRefreshToken:
	default:
		return nil, badRequest(dpop.CodeUnsupportedGrantType, "the grant type is not supported", ErrGrantType)
	}
	if !slices.Contains(client.GrantTypes, grant) || (grant == GrantClientCredentials && client.Public()) {
		return nil, badRequest(dpop.CodeUnauthorizedClient, "the client may not use this grant type", ErrGrantType)
	}
	// Each grant checks, in this order: the client (above), the grant
	// without spending it, the proof without recording it, and only then
	// the proof takes its place in the replay cache (within the client's
	// and the grant's quota) and the grant is spent. A request that is
	// refused spends nothing another party needs.
	switch grant {
	case GrantClientCredentials:
		return s.clientCredentials(r, client, pending, f)
	case GrantAuthorizationCode:
		return s.authorizationCode(r, client, pending, f)
	default:
		return s.refresh(r, client, pending, f)
	}
}

// tokenProof checks the DPoP proof of a token request against the token
// endpoint's public URL (RFC 9449 §4.3, §5), without recording it: the
// caller accepts it (acceptProof) once the grant has passed its checks.
// jkt is the key the grant is bound to ("" for none): a proof by another key
// is refused before its signature is checked. grantID names the grant the
// proof is charged to (dpop.Quota). It returns nil without a proof only when
// the client may receive a Bearer token and the grant is not bound.
func (s *Server) tokenProof(r *http.Request, client *store.Client, jkt, grantID string) (*dpop.Proof, *Error) {
	proofs := r.Header.Values("DPoP")
	if len(proofs) == 0 {
		if client.DPoPBound || !s.cfg.AllowBearer || jkt != "" {
			e := badRequest(dpop.CodeInvalidProof, "a DPoP proof is required", ErrProofRequired)
			s.proofChecked(dpop.EndpointToken, client, dpop.ReasonMissing, e)
			return nil, e
		}
		return nil, nil
	}
	p, err := s.verifier.Check(r.Context(), dpop.Request{
		Method: r.Method, URL: s.url(s.cfg.Paths.Token), Proofs: proofs,
		BoundJKT: jkt, Client: client.ID, Grant: grantID,
	})
	if err != nil {
		e := proofError(err)
		if errors.Is(err, dpop.ErrKeyMismatch) {
			// RFC 9449 §5, §10: the grant is bound to another key.
			e = badRequest(dpop.CodeInvalidGrant, "the DPoP key does not match the grant's binding", err)
		}
		s.proofChecked(dpop.EndpointToken, client, dpop.ReasonOf(err), e)
		return nil, e
	}
	return p, nil
}

// acceptCheckedProof spends what a request that passed every other check
// holds in the shared caches: the client assertion's jti first (a replayed
// one stops the request before its proof takes a place), then the proof,
// whose outcome it reports to Config.Hooks for the endpoint (the refusals
// of the check before are reported where they happen), once per request.
func (s *Server) acceptCheckedProof(ctx context.Context, endpoint dpop.Endpoint, client *store.Client, pending *pendingAssertion, p *dpop.Proof) *Error {
	return s.acceptCheckedProofWith(ctx, endpoint, client, pending, p, nil)
}

// acceptCheckedProofWith is acceptCheckedProof with insert recording the
// proof in the replay cache (dpop.Verifier.AcceptWith); nil: the cache's
// Insert.
func (s *Server) acceptCheckedProofWith(ctx context.Context, endpoint dpop.Endpoint, client *store.Client, pending *pendingAssertion, p *dpop.Proof, insert dpop.InsertFunc) *Error {
	if e := s.spendAssertion(ctx, pending); e != nil {
		return e
	}
	e := s.acceptProof(ctx, p, insert)
	if p != nil {
		reason := dpop.ReasonNone
		if e != nil {
			reason = dpop.ReasonOf(e.Err)
		}
		s.proofChecked(endpoint, client, reason, e)
	}
	return e
}

// proofChecked reports the outcome of a token request's proof to
// Hooks.ProofChecked: accepted when e is nil.
func (s *Server) proofChecked(endpoint dpop.Endpoint, client *store.Client, reason dpop.RefusalReason, e *Error) {
	h := s.cfg.Hooks
	if h == nil || h.ProofChecked == nil {
		return
	}
	ev := dpop.ProofEvent{Endpoint: endpoint, Accepted: e == nil, Reason: reason, Client: client.ID}
	if e != nil {
		ev.Err = e
	}
	h.ProofChecked(ev)
}

// acceptProof records a checked proof in the replay cache, charged to the
// client's and the grant's quotas (RFC 9449 §11.1), with insert (nil: the
// replay cache's Insert). A nil proof (a Bearer request) has nothing to
// record.
func (s *Server) acceptProof(ctx context.Context, p *dpop.Proof, insert dpop.InsertFunc) *Error {
	if p == nil {
		return nil
	}
	if err := s.verifier.AcceptWith(ctx, p, insert); err != nil {
		return proofError(err)
	}
	return nil
}

// proofError maps a verifier error to the token endpoint's answer (RFC 9449
// §5, §8): 400 invalid_dpop_proof or use_dpop_nonce with the nonce, 429
// with Retry-After when the client or grant is over its quota, and 503 when
// the proof could not be checked.
func proofError(err error) *Error {
	var de *dpop.Error
	if !errors.As(err, &de) {
		return oauthError(http.StatusServiceUnavailable, dpop.CodeServerError, "the proof could not be checked", err)
	}
	switch de.Code {
	case dpop.CodeUseNonce:
		e := badRequest(dpop.CodeUseNonce, "use the server-provided DPoP nonce", err)
		e.Nonce = de.Nonce
		return e
	case dpop.CodeTemporarilyUnavailable:
		e := oauthError(http.StatusTooManyRequests, dpop.CodeTemporarilyUnavailable, de.Description, err)
		e.RetryAfter = de.RetryAfter
		return e
	case dpop.CodeServerError:
		return oauthError(http.StatusServiceUnavailable, dpop.CodeServerError, "the proof could not be checked", err)
	}
	return badRequest(dpop.CodeInvalidProof, de.Description, err)
}

func (s *Server) clientCredentials(r *http.Request, client *store.Client, pending *pendingAssertion, f form) (*tokenResponse, *Error) {
	ctx := r.Context()
	scope, e := s.grantScopes(ctx, client, f.get("scope"))
	if e != nil {
		return nil, e
	}
	audience, e := s.grantAudience(ctx, client, f.resources)
	if e != nil {
		return nil, e
	}
	// The client is the party: a client credentials grant lives as long
	// as the request.
	proof, e := s.tokenProof(r, client, "", "")
	if e != nil {
		return nil, e
	}
	in := issued{subject: client.ID, scope: scope, audience: audience, grantID: randomToken(), proof: proof}
	if s.cfg.issuer != nil && proof != nil {
		return s.issueAccepting(ctx, client, pending, in)
	}
	if e := s.acceptCheckedProof(ctx, dpop.EndpointToken, client, pending, proof); e != nil {
		return nil, e
	}
	return s.issue(ctx, client, in)
}

// issueAccepting is acceptCheckedProof followed by issue in one store call
// (store.AccessTokenIssuer, with opaque tokens in a store that is also the
// replay cache): the token is minted first, then the proof's replay entry
// is recorded and the token saved together (RFC 9449 §11.1, §6), so that a
// replayed proof saves no token and an accepted one costs one round trip.
// The quotas are charged and refunded by the verifier as by Accept. A store
// that recorded the entry but could not save the token (the memory store,
// out of room) keeps the charge and answers as a failed save does.
func (s *Server) issueAccepting(ctx context.Context, client *store.Client, pending *pendingAssertion, in issued) (*tokenResponse, *Error) {
	at, resp, e := s.newAccessToken(ctx, client, in)
	if e != nil {
		return nil, e
	}
	tok, h := newOpaqueToken()
	var saveErr error
	insert := func(ctx context.Context, key dpop.ReplayKey, ttl time.Duration) (bool, error) {
		ok, err := s.cfg.issuer.InsertAndSaveAccessToken(ctx, key, ttl, h, at)
		if ok && err != nil {
			saveErr = err // the proof is spent; the token is not saved
			return true, nil
		}
		return ok, err
	}
	if e := s.acceptCheckedProofWith(ctx, dpop.EndpointToken, client, pending, in.proof, insert); e != nil {
		return nil, e
	}
	if saveErr != nil {
		return nil, s.storeErr(ctx, saveErr)
	}
	resp.AccessToken = tok
	return resp, nil
}

// codeRefused is the one answer to a code that cannot be redeemed by this
// request, whatever the reason (unknown, expired, used, another client's):
// the answer must not tell which codes exist.
func codeRefused(cause error) *Error {
	return badRequest(dpop.CodeInvalidGrant, "the code is invalid, expired or already used", cause)
}

func (s *Server) authorizationCode(r *http.Request, client *store.Client, pending *pendingAssertion, f form) (*tokenResponse, *Error) {
	ctx := r.Context()
	code, e := f.required("code")
	if e != nil {
		return nil, e
	}
	h := store.HashToken(code)
	rec, err := s.cfg.Store.GetCode(ctx, h)
	if e := s.codeError(ctx, client, rec, err); e != nil {
		return nil, e
	}
	// Another client's code is refused like an unknown one, and stays
	// redeemable by its owner.
	if rec.ClientID != client.ID {
		return nil, codeRefused(ErrInvalidGrant)
	}
	// RFC 6749 §4.1.3: redirect_uri as in the authorization request.
	if uri := f.get("redirect_uri"); uri != rec.RedirectURI && (rec.RedirectURI != "" || !slices.Contains(client.RedirectURIs, uri)) {
		return nil, badRequest(dpop.CodeInvalidGrant, "redirect_uri does not match the authorization request", ErrRedirectURI)
	}
	// RFC 7636 §4.6; a verifier without a challenge is refused too, so
	// that PKCE cannot be downgraded.
	verifier := f.get("code_verifier")
	switch {
	case rec.CodeChallenge == "" && (verifier != "" || client.Public()):
		return nil, badRequest(dpop.CodeInvalidGrant, "PKCE verification failed", ErrPKCE)
	case rec.CodeChallenge != "" && (rec.CodeChallengeMethod != PKCEMethodS256 || !validCodeVerifier(verifier) || !pkceMatches(verifier, rec.CodeChallenge)):
		return nil, badRequest(dpop.CodeInvalidGrant, "PKCE verification failed", ErrPKCE)
	}
	// RFC 8707 §2.2: the token's resources are within the grant's.
	audience, e := s.narrowAudience(client, rec.Resources, f.resources)
	if e != nil {
		return nil, e
	}
	// RFC 9449 §10: a code bound with dpop_jkt needs a proof by that key.
	proof, e := s.tokenProof(r, client, rec.DPoPJKT, rec.GrantID)
	if e != nil {
		return nil, e
	}
	if e := s.acceptCheckedProof(ctx, dpop.EndpointToken, client, pending, proof); e != nil {
		return nil, e
	}
	// Everything passed: redeem the code, exactly once.
	rec, err = s.cfg.Store.ConsumeCode(ctx, h)
	if e := s.codeError(ctx, client, rec, err); e != nil {
		return nil, e
	}
	return s.issue(ctx, client, issued{
		subject: rec.Subject, scope: rec.Scope, audience: audience, grantID: rec.GrantID, proof: proof,
		refresh: slices.Contains(client.GrantTypes, GrantRefreshToken), grantAudience: s.recordedAudience(client, rec.Resources),
	})
}

// codeError answers a failed code lookup or redemption. The owner using a
// code twice revokes what the first use issued (RFC 6749 §4.1.2); another
// client presenting a used code changes nothing.
func (s *Server) codeError(ctx context.Context, client *store.Client, rec *store.AuthorizationCode, err error) *Error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrConsumed) && rec != nil && rec.ClientID == client.ID:
		s.revokeGrant(ctx, client, rec.GrantID)
		return codeRefused(ErrCodeReplayed)
	case errors.Is(err, store.ErrConsumed), errors.Is(err, store.ErrNotFound):
		return codeRefused(ErrInvalidGrant)
	}
	return s.storeErr(ctx, err)
}

func (s *Server) refresh(r *http.Request, client *store.Client, pending *pendingAssertion, f form) (*tokenResponse, *Error) {
	ctx := r.Context()
	token, e := f.required("refresh_token")
	if e != nil {
		return nil, e
	}
	old := store.HashToken(token)
	rec, err := s.cfg.Store.GetRefreshToken(ctx, old)
	if err != nil {
		return nil, s.refreshError(ctx, client, rec, err)
	}
	if rec.ClientID != client.ID {
		// Refused like an unknown token: the answer must not tell which
		// tokens exist.
		return nil, refreshRefused(ErrInvalidGrant)
	}
	scope := rec.Scope
	requested, ok := parseScope(f.get("scope"))
	if !ok {
		return nil, badRequest(dpop.CodeInvalidScope, "the scope is malformed", ErrScope)
	}
	if requested != nil {
		// RFC 6749 §6: a narrower scope, never a wider one.
		granted, _ := parseScope(rec.Scope) // stored by issue, space-separated
		for _, sc := range requested {
			if !slices.Contains(granted, sc) {
				return nil, badRequest(dpop.CodeInvalidScope, "the scope exceeds the original grant", ErrScope)
			}
		}
		scope = strings.Join(requested, " ")
	}
	// RFC 8707 §2.2: a narrower audience, never a wider one.
	audience, e := s.narrowAudience(client, rec.Audience, f.resources)
	if e != nil {
		return nil, e
	}
	// RFC 9449 §5: a bound refresh token is used with its key.
	proof, e := s.tokenProof(r, client, rec.JKT, rec.GrantID)
	if e != nil {
		return nil, e
	}
	if e := s.acceptCheckedProof(ctx, dpop.EndpointToken, client, pending, proof); e != nil {
		return nil, e
	}
	out := issued{subject: rec.Subject, scope: scope, audience: audience, grantID: rec.GrantID, proof: proof}
	if !client.Public() {
		return s.issue(ctx, client, out)
	}
	// Public clients' refresh tokens rotate on every use and keep their key
	// binding (RFC 9449 §5, RFC 9700 §4.14.2). The access token is minted
	// first: if that failed after the rotation, the client would never see
	// the new refresh token, and its retry with the old one would look like
	// a replay and revoke the grant.
	next := randomToken()
	out.rotated = next
	resp, e := s.issue(ctx, client, out)
	if e != nil {
		return nil, e
	}
	now := s.cfg.Now()
	rotatedFrom, err := s.cfg.Store.RotateRefreshToken(ctx, old, store.HashToken(next), &store.RefreshToken{
		GrantID: rec.GrantID, ClientID: client.ID, Subject: rec.Subject, Scope: rec.Scope, JKT: rec.JKT,
		Audience: s.recordedAudience(client, rec.Audience), IssuedAt: now, ExpiresAt: now.Add(s.refreshTTL(client)),
	})
	if err != nil {
		// Lost a race with another use of the same token (a replay too), or
		// the store failed: the access token minted above is withdrawn.
		if s.cfg.AccessTokenFormat == FormatOpaque {
			if rerr := s.cfg.Store.RevokeAccessToken(ctx, store.HashToken(resp.AccessToken)); rerr != nil {
				s.cfg.Logger.ErrorContext(ctx, "withdrawing an access token after a failed rotation", "err", rerr)
			}
		}
		return nil, s.refreshError(ctx, client, rotatedFrom, err)
	}
	return resp, nil
}

// refreshRefused is the one answer to a refresh token that cannot be used
// by this request.
func refreshRefused(cause error) *Error {
	return badRequest(dpop.CodeInvalidGrant, "the refresh token is invalid, expired or revoked", cause)
}

// refreshError answers a failed refresh token lookup or rotation. A rotated
// refresh token used again by its client means someone holds a copy: the
// whole grant is revoked (RFC 9700 §4.14.2). Another client presenting it
// changes nothing.
func (s *Server) refreshError(ctx context.Context, client *store.Client, rec *store.RefreshToken, err error) *Error {
	switch {
	case errors.Is(err, store.ErrConsumed) && rec != nil && rec.ClientID == client.ID:
		s.revokeGrant(ctx, client, rec.GrantID)
		return refreshRefused(ErrRefreshReplayed)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevoked), errors.Is(err, store.ErrConsumed):
		return refreshRefused(ErrInvalidGrant)
	}
	return s.storeErr(ctx, err)
}

// issued describes the tokens one successful request gets.
type issued struct {
	subject, scope, grantID string
	audience                []string // the access token's (RFC 8707)
	proof                   *dpop.Proof
	refresh                 bool     // issue a new refresh token
	grantAudience           []string // the new refresh token's audience
	rotated                 string   // a rotated refresh token to return
}

// issue mints the access token (bound to the proof's key, RFC 9449 §6) and,
// when asked, a refresh token: bound to the key for public clients, unbound
// for confidential ones (RFC 9449 §5).
func (s *Server) issue(ctx context.Context, client *store.Client, in issued) (*tokenResponse, *Error) {
	at, resp, e := s.newAccessToken(ctx, client, in)
	if e != nil {
		return nil, e
	}
	tok, err := s.tokens.Issue(ctx, at)
	if err != nil {
		return nil, s.storeErr(ctx, err)
	}
	resp.AccessToken = tok
	if in.refresh {
		now := at.IssuedAt
		rt := &store.RefreshToken{
			GrantID: in.grantID, ClientID: client.ID, Subject: in.subject, Scope: in.scope, Audience: in.grantAudience,
			IssuedAt: now, ExpiresAt: now.Add(s.refreshTTL(client)),
		}
		if client.Public() && in.proof != nil {
			rt.JKT = in.proof.JKT
		}
		resp.RefreshToken = randomToken()
		if err := s.cfg.Store.SaveRefreshToken(ctx, store.HashToken(resp.RefreshToken), rt); err != nil {
			return nil, s.storeErr(ctx, err)
		}
	}
	return resp, nil
}

// newAccessToken returns the record of the access token issue mints, with
// the host's claims, and the response without the token.
func (s *Server) newAccessToken(ctx context.Context, client *store.Client, in issued) (*store.AccessToken, *tokenResponse, *Error) {
	now := s.cfg.Now()
	ttl := s.accessTTL(client)
	at := &store.AccessToken{
		GrantID: in.grantID, ClientID: client.ID, Subject: in.subject, Scope: in.scope, Audience: in.audience,
		IssuedAt: now, ExpiresAt: now.Add(ttl),
	}
	resp := &tokenResponse{TokenType: TokenTypeBearer, ExpiresIn: int64(ttl / time.Second), Scope: in.scope, RefreshToken: in.rotated}
	if in.proof != nil {
		at.JKT, resp.TokenType = in.proof.JKT, TokenTypeDPoP
	}
	var e *Error
	if at.Claims, e = s.hostClaims(ctx, client, at); e != nil {
		return nil, nil, e
	}
	return at, resp, nil
}

// grantScopes parses and checks the scope parameter (RFC 6749 §3.3).
func (s *Server) grantScopes(ctx context.Context, client *store.Client, param string) (string, *Error) {
	requested, ok := parseScope(param)
	if !ok {
		return "", badRequest(dpop.CodeInvalidScope, "the scope is malformed", ErrScope)
	}
	granted, err := s.cfg.ScopePolicy(ctx, client, requested)
	switch {
	case errors.Is(err, ErrScope):
		return "", badRequest(dpop.CodeInvalidScope, "the requested scope is not allowed", err)
	case err != nil:
		return "", oauthError(http.StatusInternalServerError, dpop.CodeServerError, "the scope policy failed", err)
	}
	return strings.Join(granted, " "), nil
}

func (s *Server) accessTTL(c *store.Client) time.Duration {
	if c.AccessTokenTTL > 0 {
		return c.AccessTokenTTL
	}
	return s.cfg.AccessTokenTTL
}

func (s *Server) refreshTTL(c *store.Client) time.Duration {
	if c.RefreshTokenTTL > 0 {
		return c.RefreshTokenTTL
	}
	return s.cfg.RefreshTokenTTL
}

// revokeGrant revokes every token of a grant until none of them can still be
// alive. A failure is logged; the request is refused either way.
func (s *Server) revokeGrant(ctx context.Context, client *store.Client, grantID string) {
	if err := s.cfg.Store.RevokeGrant(ctx, grantID, s.grantRevocationEnd(client, &store.RefreshToken{})); err != nil {
		s.cfg.Logger.ErrorContext(ctx, "revoking a replayed grant failed", "err", err)
		return
	}
	s.cfg.Logger.WarnContext(ctx, "code or refresh token replayed: grant revoked", "client_id", client.ID)
}

// shareRetry is the Retry-After of a client whose share of a bounded store
// is full: its records free their places as they expire.
const shareRetry = time.Minute

// storeErr logs a store failure and answers 503 server_error, or 429 when
// the client holds its share of a bounded store (the others are served).
func (s *Server) storeErr(ctx context.Context, err error) *Error {
	if errors.Is(err, store.ErrShareFull) {
		e := oauthError(http.StatusTooManyRequests, dpop.CodeTemporarilyUnavailable, "the client holds its share of the server's records; retry later", err)
		e.RetryAfter = shareRetry
		return e
	}
	if ctx.Err() != nil {
		// The client went away (or its deadline passed): not a store fault.
		s.cfg.Logger.InfoContext(ctx, "request ended before the store answered", "err", err)
	} else {
		s.cfg.Logger.ErrorContext(ctx, "store failure", "err", err)
	}
	return oauthError(http.StatusServiceUnavailable, dpop.CodeServerError, "the server cannot handle the request now", errors.Join(ErrStore, err))
}
