package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// settings is what a middleware instance needs at request time, also
// reachable from the request context for RequireScope.
type settings struct {
	verifier  *dpop.Verifier
	validator TokenValidator
	audiences []string
	algs      string
	realm     string
	bearer    bool
	onError   ErrorHandler
	log       *slog.Logger
	hooks     *dpop.Hooks
	// use is the one-round-trip path (use.go), nil when the validator
	// and the replay cache do not allow it.
	use *tokenUse
	now func() time.Time
}

type settingsKey struct{}

// New returns the middleware. Every request it lets through carried
// `Authorization: DPoP <token>` (or, with AllowBearer, an unbound Bearer
// token) whose audience names this API (one of Options.Audiences, RFC 8707
// §2, RFC 9068 §4) and one DPoP proof that passed every check of RFC 9449
// §4.3 for this request, with ath for this token, made with the key the
// token is bound to (§7). The token's Principal is in the request context
// (PrincipalFrom).
func New(opts Options) (func(http.Handler) http.Handler, error) {
	st, err := newSettings(opts)
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, e := st.check(r)
			if e != nil {
				st.log.InfoContext(r.Context(), "request refused", append([]any{"status", e.Status, "error", e.Code}, dpop.LogAttrs(e.Err)...)...)
				if h := st.hooks; h != nil && h.ResourceRefused != nil {
					h.ResourceRefused(dpop.ResourceEvent{Reason: proofReason(e), Code: e.Code, Status: e.Status})
				}
				st.onError(w, r, e)
				return
			}
			if nonce, err := st.verifier.Nonce(r.Context()); err == nil && nonce != "" {
				w.Header().Set("DPoP-Nonce", nonce)
			}
			ctx := context.WithValue(WithPrincipal(r.Context(), p), settingsKey{}, st)
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}, nil
}

func newSettings(opts Options) (*settings, error) {
	opts, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	opts.DPoP.BaseURL = opts.ResourceURL
	if opts.DPoP.Now == nil {
		opts.DPoP.Now = time.Now
	}
	v, err := dpop.NewVerifier(opts.DPoP)
	if err != nil {
		return nil, fmt.Errorf("middleware: %w", err)
	}
	return &settings{
		verifier: v, validator: opts.Validator, audiences: opts.Audiences, algs: strings.Join(v.Algorithms(), " "),
		realm: opts.Realm, bearer: opts.AllowBearer, onError: opts.ErrorHandler, log: opts.Logger, hooks: opts.Hooks,
		use: newTokenUse(opts.Validator, opts.DPoP.ReplayCache, DefaultCacheSize),
		now: opts.DPoP.Now,
	}, nil
}

// check runs every check of RFC 9449 §7 on a request.
func (st *settings) check(r *http.Request) (*Principal, *Error) {
	scheme, token, e := st.credentials(r)
	if e != nil {
		return nil, e
	}
	var u *usage
	if scheme == "dpop" && st.use != nil {
		u = &usage{h: store.HashToken(token)}
		if b, ok := st.use.lookup(u.h, st.now()); ok {
			// A token whose proof was accepted before: its binding
			// stands in for the lookup, UseAccessToken reads it again.
			return st.checkProof(r, token, b.principal(), u)
		}
	}
	p, err := st.validator.Validate(r.Context(), token)
	if e := st.tokenError(p, err); e != nil {
		return nil, e
	}
	// RFC 8707 §2, RFC 9068 §4: a token for another API is refused here,
	// whichever validator read it, and before the proof check, so that a
	// request refused for its audience takes no place in the replay cache
	// and no share of a client's quota.
	if !st.forUs(p.Audience) {
		return nil, st.refuse(http.StatusUnauthorized, dpop.CodeInvalidToken, "the access token is not meant for this resource", errWrongAudience)
	}
	if scheme == "bearer" {
		if p.JKT != "" {
			// §7.2: a bound token sent as Bearer is a downgrade attempt.
			return nil, st.refuse(http.StatusUnauthorized, dpop.CodeInvalidToken, "a DPoP-bound token must be sent with the DPoP scheme", ErrBoundTokenAsBearer)
		}
		return p, nil
	}
	if p.JKT == "" {
		return nil, st.refuse(http.StatusUnauthorized, dpop.CodeInvalidToken, "the access token is not DPoP-bound", ErrUnboundToken)
	}
	return st.checkProof(r, token, p, u)
}

// tokenError is the refusal of a validator's answer, nil when it is a
// principal.
func (st *settings) tokenError(p *Principal, err error) *Error {
	switch {
	case errors.Is(err, ErrInvalidToken):
		return st.refuse(http.StatusUnauthorized, dpop.CodeInvalidToken, "the access token is invalid, expired or revoked", err)
	case err != nil:
		return st.refuse(http.StatusServiceUnavailable, dpop.CodeServerError, "the access token cannot be checked now", errors.Join(ErrValidatorUnavailable, err))
	case p == nil:
		return st.refuse(http.StatusUnauthorized, dpop.CodeInvalidToken, "the access token is invalid", ErrInvalidToken)
	}
	return nil
}

// checkProof checks the request's proof against the DPoP-bound token p
// stands for (§7.1) and records it: in the replay cache, or, with u, by
// UseAccessToken, which reads the token again in the same step and
// decides whether it is still good. It returns the principal of the
// token: p, or the one of the record UseAccessToken read.
func (st *settings) checkProof(r *http.Request, token string, p *Principal, u *usage) (*Principal, *Error) {
	// RFC 8707 §2: checked again for a token known by its binding.
	if !st.forUs(p.Audience) {
		return nil, st.refuse(http.StatusUnauthorized, dpop.CodeInvalidToken, "the access token is not meant for this resource", errWrongAudience)
	}
	// §7.1: the token is bound to the key that signed the proof. The
	// verifier checks the binding before the signature and before the
	// replay cache, so that proofs by other keys take no place there.
	// The replay entry is charged to the token's client and to its grant,
	// or the token itself when the validator does not know the grant
	// (dpop.Quota), so that one party cannot fill the cache that every
	// other client's requests need.
	req := st.verifier.RequestOf(r)
	req.AccessToken, req.BoundJKT = token, p.JKT
	// Grant ids and tokens are both random strings the server made, so
	// one never names the other's party.
	req.Client, req.Grant = p.ClientID, token
	if p.GrantID != "" {
		req.Grant = p.GrantID
	}
	ctx := r.Context()
	var (
		proof *dpop.Proof
		err   error
	)
	if u == nil {
		proof, err = st.verifier.Verify(ctx, req)
	} else if proof, err = st.verifier.Check(ctx, req); err == nil {
		err = st.verifier.AcceptWith(ctx, proof, u.insert(st.use.user, p.JKT))
	}
	if u != nil && u.refused != nil {
		// The token is no longer good: nothing was recorded, and the
		// proof was neither accepted nor refused.
		st.use.bindings.Remove(u.h)
		return nil, st.tokenError(nil, u.refused)
	}
	if err == nil && !equalConstantTime(proof.JKT, p.JKT) { // belt and braces
		err = dpop.ErrKeyMismatch
	}
	var e *Error
	switch {
	case errors.Is(err, dpop.ErrKeyMismatch):
		e = st.refuse(http.StatusUnauthorized, dpop.CodeInvalidToken, "the proof key does not match the token binding", err)
	case err != nil:
		e = st.proofError(err)
	}
	if h := st.hooks; h != nil && h.ProofChecked != nil {
		ev := dpop.ProofEvent{Endpoint: dpop.EndpointResource, Accepted: e == nil, Reason: dpop.ReasonOf(err), Client: p.ClientID}
		if e != nil {
			ev.Err = e
		}
		h.ProofChecked(ev)
	}
	if e != nil {
		return nil, e
	}
	if u == nil {
		return p, nil
	}
	p, err = recordPrincipal(u.t)
	if err != nil {
		return nil, st.tokenError(nil, err)
	}
	if !st.forUs(p.Audience) { // the record read, should it differ
		st.use.bindings.Remove(u.h)
		return nil, st.refuse(http.StatusUnauthorized, dpop.CodeInvalidToken, "the access token is not meant for this resource", errWrongAudience)
	}
	st.use.remember(u.h, p)
	return p, nil
}

// proofReason is the refusal reason of e when its cause is a proof
// refusal (dpop.ReasonOf), dpop.ReasonNone when the token or the request
// was at fault.
func proofReason(e *Error) dpop.RefusalReason {
	var de *dpop.Error
	if errors.As(e.Err, &de) || errors.Is(e.Err, dpop.ErrKeyMismatch) {
		return dpop.ReasonOf(e.Err)
	}
	return dpop.ReasonNone
}

// forUs reports whether a token's audience names one of Options.Audiences,
// compared exactly; an empty audience names none. It allocates nothing.
func (st *settings) forUs(audience []string) bool {
	for _, a := range st.audiences {
		if slices.Contains(audience, a) {
			return true
		}
	}
	return false
}

// errWrongAudience is the cause of every audience refusal: ErrInvalidToken
// and ErrTokenAudience, with a fixed reason (never the token's aud).
var errWrongAudience error = &tokenRefusal{cause: ErrTokenAudience, reason: "audience names another resource"}

// credentials finds the one access token of a request: the Authorization
// header with scheme DPoP (or Bearer), and no other method (RFC 6750 §2:
// access_token in the query counts as one).
func (st *settings) credentials(r *http.Request) (scheme, token string, e *Error) {
	auths := r.Header.Values("Authorization")
	// Parse the query only when it could hold a token (hot path): it names
	// access_token, or has a percent-encoding that may spell it.
	raw := r.URL.RawQuery
	queryToken := (strings.Contains(raw, "access_token") || strings.IndexByte(raw, '%') >= 0) && r.URL.Query().Has("access_token")
	switch {
	case len(auths) == 0 && !queryToken:
		return "", "", &Error{Status: http.StatusUnauthorized, Description: "an access token is required", Challenge: st.challenge("", ""), Err: ErrNoCredentials}
	case len(auths) > 1 || (len(auths) == 1 && queryToken):
		return "", "", st.refuse(http.StatusBadRequest, dpop.CodeInvalidRequest, "use exactly one authentication method", ErrMultipleMethods)
	case queryToken:
		return "", "", st.refuse(http.StatusBadRequest, dpop.CodeInvalidRequest, "send the access token in the Authorization header", ErrMalformedHeader)
	}
	s, t, ok := strings.Cut(auths[0], " ")
	t = strings.TrimLeft(t, " ")
	scheme = strings.ToLower(s)
	if !ok || t == "" || strings.ContainsAny(t, " \t,") {
		// RFC 6750 §3.1: invalid_request is answered with 400.
		return "", "", st.refuse(http.StatusBadRequest, dpop.CodeInvalidRequest, "malformed Authorization header", ErrMalformedHeader)
	}
	switch scheme {
	case "dpop":
	case "bearer":
		if !st.bearer {
			return "", "", st.refuse(http.StatusUnauthorized, dpop.CodeInvalidToken, "Bearer tokens are not accepted; use DPoP", ErrBearerNotAccepted)
		}
	default:
		return "", "", &Error{Status: http.StatusUnauthorized, Description: "unsupported authentication scheme", Challenge: st.challenge("", ""), Err: ErrNoCredentials}
	}
	return scheme, t, nil
}

// proofError maps a proof refusal to 401 invalid_dpop_proof or
// use_dpop_nonce with a nonce (RFC 9449 §7.1, §9), or 503.
func (st *settings) proofError(err error) *Error {
	var de *dpop.Error
	if !errors.As(err, &de) || de.Code == dpop.CodeServerError {
		return st.refuse(http.StatusServiceUnavailable, dpop.CodeServerError, "the proof cannot be checked now", err)
	}
	switch de.Code {
	case dpop.CodeUseNonce:
		e := st.refuse(http.StatusUnauthorized, dpop.CodeUseNonce, "use the server-provided DPoP nonce", err)
		e.Nonce = de.Nonce
		return e
	case dpop.CodeTemporarilyUnavailable:
		// Over the quota: the client's credentials are fine, so no error
		// goes in a challenge (RFC 6585 §4).
		return &Error{Status: http.StatusTooManyRequests, Code: dpop.CodeTemporarilyUnavailable, Description: de.Description, RetryAfter: de.RetryAfter, Err: err}
	}
	return st.refuse(http.StatusUnauthorized, dpop.CodeInvalidProof, de.Description, err)
}

// refuse builds an error with the DPoP challenge (and a Bearer one when
// Bearer tokens are accepted).
func (st *settings) refuse(status int, code dpop.ErrorCode, description string, cause error) *Error {
	return &Error{Status: status, Code: code, Description: description, Challenge: st.challenge(code, description), Err: cause}
}

// challenge is the WWW-Authenticate value: DPoP with algs (RFC 9449 §7.1),
// plus Bearer when accepted.
func (st *settings) challenge(code dpop.ErrorCode, description string) string {
	c := challenge("DPoP", "realm", st.realm, "algs", st.algs, "error", string(code), "error_description", description)
	if st.bearer {
		c += ", " + challenge("Bearer", "realm", st.realm, "error", string(code), "error_description", description)
	}
	return c
}
