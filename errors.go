package dpop

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// OAuth error codes used by DPoP (RFC 9449 §5, §7.1, §8, §9, §12.2).
const (
	// CodeInvalidProof is the error code for a DPoP proof that fails any check.
	CodeInvalidProof = "invalid_dpop_proof"
	// CodeUseNonce is the error code telling a client to retry with the server
	// nonce given in the DPoP-Nonce response header (RFC 9449 §8, §9).
	CodeUseNonce = "use_dpop_nonce"
	// CodeServerError is used when the proof could not be checked because of a
	// failure on the server side, such as a replay cache that is full or down.
	// The request is refused; the client is not at fault (RFC 6749 §5.2 leaves
	// server failures to HTTP 5xx).
	CodeServerError = "server_error"
	// CodeTemporarilyUnavailable is used when the party a proof is charged
	// to has used its share of the replay cache (ErrQuota): the proof is
	// refused for now, and Error.RetryAfter says when to try again. Servers
	// answer it with HTTP 429 and Retry-After (RFC 6585 §4).
	CodeTemporarilyUnavailable = "temporarily_unavailable"
)

// Sentinel causes of a refused proof. An [*Error] returned by the verifier
// wraps exactly one of them; test with errors.Is.
var (
	ErrMissingProof   = errors.New("dpop: no DPoP proof")
	ErrMultipleProofs = errors.New("dpop: more than one DPoP header")
	ErrMalformed      = errors.New("dpop: malformed proof")
	ErrTooLarge       = errors.New("dpop: proof too large")
	ErrTyp            = errors.New("dpop: typ is not dpop+jwt")
	ErrAlgorithm      = errors.New("dpop: algorithm not allowed")
	ErrKey            = errors.New("dpop: unacceptable jwk")
	ErrCrit           = errors.New("dpop: unsupported critical header")
	ErrSignature      = errors.New("dpop: invalid signature")
	ErrClaims         = errors.New("dpop: missing or mistyped claim")
	ErrJTI            = errors.New("dpop: invalid jti")
	ErrHTM            = errors.New("dpop: htm does not match the request method")
	ErrHTU            = errors.New("dpop: htu does not match the request URI")
	ErrStale          = errors.New("dpop: iat outside the acceptable window")
	ErrATH            = errors.New("dpop: ath does not match the access token")
	ErrNonce          = errors.New("dpop: missing or invalid nonce")
	ErrReplay         = errors.New("dpop: proof replayed")
	// ErrKeyMismatch: the proof is by another key than the one the access
	// token is bound to (Request.BoundJKT, RFC 9449 §7.1).
	ErrKeyMismatch = errors.New("dpop: proof key does not match the token binding")
	// ErrReplayCacheFull is returned by a [ReplayCache] that has no room for a
	// new entry; the proof is refused rather than an entry evicted early.
	ErrReplayCacheFull = errors.New("dpop: replay cache full")
	// ErrReplayCacheUnavailable wraps any other failure of the replay cache.
	ErrReplayCacheUnavailable = errors.New("dpop: replay cache unavailable")
	// ErrQuota: the client, grant or access token the proof is charged to
	// has used its share of the replay cache ([Quota]). The proof took no
	// place there.
	ErrQuota = errors.New("dpop: party over its replay cache quota")
	// ErrNotChecked: Accept was given a proof this verifier did not check.
	ErrNotChecked = errors.New("dpop: proof was not checked by this verifier")
)

// Error is the single error type the verifier returns. Code is the OAuth error
// code to send ([CodeInvalidProof], [CodeUseNonce], [CodeTemporarilyUnavailable]
// or [CodeServerError]),
// Description a short fixed text that never contains input from the request,
// and Nonce, for [CodeUseNonce], the fresh nonce to send in the DPoP-Nonce
// header (RFC 9449 §8). Err is the sentinel cause.
type Error struct {
	Code        string
	Description string
	Nonce       string
	// RetryAfter is, for CodeTemporarilyUnavailable, how long until the
	// party has room again.
	RetryAfter time.Duration
	Err        error
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Code)
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	return b.String()
}

// Unwrap returns the sentinel cause, so that errors.Is(err, ErrReplay) works.
func (e *Error) Unwrap() error { return e.Err }

// invalid builds an invalid_dpop_proof error with a fixed description.
func invalid(cause error, description string) *Error {
	return &Error{Code: CodeInvalidProof, Description: description, Err: cause}
}

// RetryAfterSeconds formats a delay for the Retry-After header (RFC 9110
// §10.2.3): whole seconds, rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(int64((d+time.Second-1)/time.Second), 1), 10)
}
