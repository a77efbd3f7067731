package middleware

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/dpopkit/dpop"
)

// Error codes of a protected resource (RFC 6750 §3.1, RFC 9449 §7.1, §9).
const (
	CodeInvalidRequest    = "invalid_request"
	CodeInvalidToken      = "invalid_token"
	CodeInsufficientScope = "insufficient_scope"
	CodeInvalidDPoPProof  = "invalid_dpop_proof"
	CodeUseDPoPNonce      = "use_dpop_nonce"
	CodeServerError       = "server_error"
	// CodeTemporarilyUnavailable answers a request whose client or access
	// token has used its share of the replay cache (dpop.Quota), with 429
	// and Retry-After (RFC 6585 §4).
	CodeTemporarilyUnavailable = "temporarily_unavailable"
)

// Causes of a refusal, besides the dpop package's proof sentinels and the
// validator's ErrInvalidToken; test them with errors.Is in an ErrorHandler.
var (
	ErrNoCredentials      = errors.New("middleware: no access token")
	ErrMultipleMethods    = errors.New("middleware: more than one authentication method")
	ErrMalformedHeader    = errors.New("middleware: malformed Authorization header")
	ErrBearerNotAccepted  = errors.New("middleware: Bearer tokens are not accepted")
	ErrBoundTokenAsBearer = errors.New("middleware: DPoP-bound token presented as Bearer")
	ErrUnboundToken       = errors.New("middleware: token is not DPoP-bound")
	ErrKeyMismatch        = errors.New("middleware: proof key does not match the token's cnf.jkt")
	ErrInsufficientScope  = errors.New("middleware: token lacks a required scope")
)

// Error is a refused request: the status, the OAuth error code ("" when no
// credentials were presented, RFC 6750 §3.1), a fixed description, the
// WWW-Authenticate challenge to send, a DPoP-Nonce for use_dpop_nonce, for a
// 429 the delay to send in Retry-After, and the cause.
type Error struct {
	Status      int
	Code        string
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
	return e.Code + ": " + e.Description
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrorHandler renders a refusal. The default, [WriteError], sends the
// challenge and a small JSON body.
type ErrorHandler func(w http.ResponseWriter, r *http.Request, e *Error)

// WriteError is the default ErrorHandler: the status, WWW-Authenticate,
// DPoP-Nonce and Retry-After when set, and {"error","error_description"}
// when there is a code.
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
	if e.Code == "" {
		w.WriteHeader(e.Status)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(map[string]string{"error": e.Code, "error_description": e.Description})
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
