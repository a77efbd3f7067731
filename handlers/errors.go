package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/dpopkit/dpop"
)

// Sentinel causes of an [*Error], for logs and for hosts that inspect errors
// (errors.Is). Proof failures wrap the dpop package's sentinels instead; a
// proof by another key than the grant's binding wraps dpop.ErrKeyMismatch.
var (
	ErrMethod          = errors.New("handlers: method not allowed")
	ErrContentType     = errors.New("handlers: body is not application/x-www-form-urlencoded")
	ErrBodyTooLarge    = errors.New("handlers: body too large")
	ErrRepeatedParam   = errors.New("handlers: parameter repeated")
	ErrMissingParam    = errors.New("handlers: required parameter missing")
	ErrClientAuth      = errors.New("handlers: client authentication failed")
	ErrAuthMethods     = errors.New("handlers: more than one client authentication method")
	ErrGrantType       = errors.New("handlers: grant type not allowed")
	ErrScope           = errors.New("handlers: scope not allowed")
	ErrTarget          = errors.New("handlers: resource not allowed")
	ErrIntrospect      = errors.New("handlers: client may not introspect")
	ErrClaims          = errors.New("handlers: host claims refused")
	ErrProofRequired   = errors.New("handlers: DPoP proof required")
	ErrCodeReplayed    = errors.New("handlers: authorization code used twice")
	ErrRefreshReplayed = errors.New("handlers: refresh token used twice")
	ErrPKCE            = errors.New("handlers: PKCE verification failed")
	ErrRedirectURI     = errors.New("handlers: redirect_uri mismatch")
	ErrInvalidGrant    = errors.New("handlers: grant is invalid, expired or revoked")
	ErrStore           = errors.New("handlers: store failure")

	// Causes of refusals at the authorization endpoint only; they appear
	// in logs.
	errUnknownClient        = errors.New("handlers: unknown client")
	errRedirectUnusable     = errors.New("handlers: registered redirect URI unusable")
	errUnsupportedResponse  = errors.New("handlers: unsupported response_type")
	errMalformedJKT         = errors.New("handlers: malformed dpop_jkt")
	errRequestObject        = errors.New("handlers: request object (RFC 9101) not supported")
	errNoUser               = errors.New("handlers: no authenticated user")
	errAuthenticatorFailed  = errors.New("handlers: authenticator failed")
	errAuthorizeUnavailable = errors.New("handlers: Config.Authenticate is nil")
)

// Error is the one error type of the handlers: an OAuth error code (one of
// the [dpop.ErrorCode] constants, RFC 6749 §5.2), a fixed
// description that never echoes the request, the HTTP status to answer with,
// and the cause. Nonce is set for use_dpop_nonce (RFC 9449 §8); Basic marks
// an invalid_client answered with a Basic challenge (RFC 6749 §5.2);
// RetryAfter is the delay sent with a 429.
type Error struct {
	Code        dpop.ErrorCode
	Description string
	Status      int
	Nonce       string
	Basic       bool
	RetryAfter  time.Duration
	Err         error
}

// Error implements error.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Description }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func oauthError(status int, code dpop.ErrorCode, description string, cause error) *Error {
	return &Error{Status: status, Code: code, Description: description, Err: cause}
}

func badRequest(code dpop.ErrorCode, description string, cause error) *Error {
	return oauthError(http.StatusBadRequest, code, description, cause)
}

// writeError renders e as an RFC 6749 §5.2 JSON error response.
func writeError(w http.ResponseWriter, e *Error) {
	h := w.Header()
	if e.Nonce != "" {
		h.Set("DPoP-Nonce", e.Nonce)
	}
	if e.Basic {
		h.Set("WWW-Authenticate", `Basic realm="oauth", charset="UTF-8"`)
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", dpop.RetryAfterSeconds(e.RetryAfter))
	}
	writeJSON(w, e.Status, map[string]string{"error": string(e.Code), "error_description": e.Description})
}

// writeJSON writes v with the headers every token-related response carries
// (RFC 6749 §5.1: no caching).
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
