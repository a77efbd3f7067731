package middleware

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/dpopkit/dpop"
)

// Causes of a refusal, besides the dpop package's proof sentinels (a proof
// by another key than the token's cnf.jkt wraps dpop.ErrKeyMismatch) and
// the validators' causes below; test them with errors.Is in an
// ErrorHandler.
var (
	// ErrNoCredentials: no access token, or one under a scheme other than
	// DPoP and Bearer (RFC 6750 §3.1: no error code).
	ErrNoCredentials = errors.New("middleware: no access token")
	// ErrMultipleMethods: more than one way of sending a token was used
	// (RFC 6750 §2).
	ErrMultipleMethods = errors.New("middleware: more than one authentication method")
	// ErrMalformedHeader: the Authorization header cannot be read, or the
	// token came in the query (RFC 6750 §2.1, §2.3).
	ErrMalformedHeader = errors.New("middleware: malformed Authorization header")
	// ErrBearerNotAccepted: a Bearer token without Options.AllowBearer.
	ErrBearerNotAccepted = errors.New("middleware: Bearer tokens are not accepted")
	// ErrBoundTokenAsBearer: a DPoP-bound token sent as Bearer (RFC 9449
	// §7.2).
	ErrBoundTokenAsBearer = errors.New("middleware: DPoP-bound token presented as Bearer")
	// ErrUnboundToken: an unbound token sent with the DPoP scheme (RFC 9449
	// §7.1).
	ErrUnboundToken = errors.New("middleware: token is not DPoP-bound")
	// ErrInsufficientScope: the token lacks a scope RequireScope needs
	// (RFC 6750 §3.1).
	ErrInsufficientScope = errors.New("middleware: token lacks a required scope")
)

// Causes of an access token refusal by a validator (or, for
// ErrTokenAudience, by the middleware itself), each wrapped together with
// ErrInvalidToken (RFC 6750 §3.1 invalid_token), so that an ErrorHandler
// can tell them apart with errors.Is.
var (
	// ErrTokenMalformed: not a JWT access token of the kit's JOSE profile
	// (size, compact serialization, header, typ at+jwt, kid), a claim of
	// the wrong JSON type or given twice, or a required claim missing
	// (RFC 9068 §2.2, §4); for introspection, an answer that describes no
	// usable access token (RFC 7662 §2.2, RFC 9449 §6.2), aud included;
	// for a stored token, a record whose Claims are not a JSON object.
	ErrTokenMalformed = errors.New("middleware: malformed access token")
	// ErrTokenAlgorithm: the token's alg is not allowed (RFC 8725 §3.1,
	// RFC 9068 §4).
	ErrTokenAlgorithm = errors.New("middleware: access token algorithm not allowed")
	// ErrUnknownKey: no key of the authorization server's set has the
	// token's kid, two have it, or the one that has it cannot verify with
	// the token's alg (RFC 7515 §4.1.4, RFC 7517 §4).
	ErrUnknownKey = errors.New("middleware: no usable key for the access token")
	// ErrTokenSignature: the signature does not verify (RFC 7515 §5.2).
	ErrTokenSignature = errors.New("middleware: access token signature does not verify")
	// ErrTokenIssuer: iss is not the authorization server's (RFC 9068 §4).
	ErrTokenIssuer = errors.New("middleware: access token from another issuer")
	// ErrTokenAudience: the token's audience names none of
	// Options.Audiences, or the token has no audience at all (RFC 8707
	// §2, RFC 9068 §4, RFC 7519 §4.1.3). The middleware checks it once,
	// after the validator, for every TokenValidator: JWT aud, the aud of
	// an introspection answer (RFC 7662 §2.2), a stored record's
	// Audience.
	ErrTokenAudience = errors.New("middleware: access token for another audience")
	// ErrTokenExpired: exp is past, beyond the leeway (RFC 7519 §4.1.4,
	// RFC 7662 §2.2).
	ErrTokenExpired = errors.New("middleware: access token expired")
	// ErrTokenNotYetValid: nbf or iat is in the future, beyond the leeway
	// (RFC 7519 §4.1.5, §4.1.6).
	ErrTokenNotYetValid = errors.New("middleware: access token not yet valid")
	// ErrTokenInactive: the authorization server says the token is not
	// active (RFC 7662 §2.2).
	ErrTokenInactive = errors.New("middleware: access token not active")
)

// tokenRefusal is a validator's refusal: ErrInvalidToken, one of the causes
// above, and a fixed reason (never the token) for logs.
type tokenRefusal struct {
	cause  error
	reason string // "jwt: expired", "introspection: inactive"
}

// Error implements error.
func (r *tokenRefusal) Error() string { return ErrInvalidToken.Error() + ": " + r.reason }

// Unwrap returns ErrInvalidToken and the cause.
func (r *tokenRefusal) Unwrap() []error { return []error{ErrInvalidToken, r.cause} }

// Error is a refused request: the status, the OAuth error code (one of the
// [dpop.ErrorCode] constants; "" when no credentials were presented, RFC
// 6750 §3.1), a fixed description, the
// WWW-Authenticate challenge to send, a DPoP-Nonce for use_dpop_nonce, for a
// 429 the delay to send in Retry-After, and the cause.
type Error struct {
	Status      int
	Code        dpop.ErrorCode
	Description string
	Challenge   string
	Nonce       string
	RetryAfter  time.Duration
	Err         error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Code == "" {
		return "middleware: " + e.Description
	}
	return string(e.Code) + ": " + e.Description
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrorHandler renders a refusal. The default, [WriteError], sends the
// challenge and a small JSON body.
type ErrorHandler func(w http.ResponseWriter, r *http.Request, e *Error)

// WriteError is the default ErrorHandler: the status, WWW-Authenticate,
// DPoP-Nonce and Retry-After when set, Cache-Control: no-store, and a JSON
// body {"error","error_description"} (RFC 6750 §3, RFC 6749 §5.2). A
// request without credentials gets the same body without "error": RFC
// 6750 §3.1 gives it no error code.
func WriteError(w http.ResponseWriter, _ *http.Request, e *Error) {
	h := w.Header()
	if e.Challenge != "" {
		h.Set("WWW-Authenticate", e.Challenge)
	}
	if e.Nonce != "" {
		h.Set("DPoP-Nonce", e.Nonce)
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", dpop.RetryAfterSeconds(e.RetryAfter))
	}
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(errorBody{Error: e.Code, Description: e.Description})
}

// errorBody is the JSON body of a refusal.
type errorBody struct {
	Error       dpop.ErrorCode `json:"error,omitempty"`
	Description string         `json:"error_description,omitempty"`
}

// challenge builds a WWW-Authenticate challenge (RFC 9110 §11.6.1, RFC 6750
// §3, RFC 9449 §7.1). Values are fixed strings of ours; quotes and
// backslashes are escaped anyway.
func challenge(scheme string, params ...string) string {
	var b strings.Builder
	b.WriteString(scheme)
	for i := 0; i+1 < len(params); i += 2 {
		if params[i+1] == "" {
			continue
		}
		if b.Len() > len(scheme) {
			b.WriteByte(',')
		}
		b.WriteByte(' ')
		b.WriteString(params[i])
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(params[i+1]))
		b.WriteByte('"')
	}
	return b.String()
}
