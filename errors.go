package dpop

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// ErrorCode is an OAuth 2.0 error code: the value of the "error" member of
// an error response (RFC 6749 §5.2), of the error parameter of an
// authorization error redirect (RFC 6749 §4.1.2.1) and of a
// WWW-Authenticate challenge (RFC 6750 §3, RFC 9449 §7.1). It is the one
// set of codes the kit uses: [Error], handlers.Error and middleware.Error
// carry one.
type ErrorCode string

// OAuth error codes, each with the section that defines it.
const (
	// CodeInvalidRequest: a required parameter is missing or repeated, or
	// the request is otherwise malformed (RFC 6749 §4.1.2.1, §5.2; at a
	// resource, RFC 6750 §3.1, answered with 400).
	CodeInvalidRequest ErrorCode = "invalid_request"
	// CodeInvalidClient: client authentication failed (RFC 6749 §5.2).
	CodeInvalidClient ErrorCode = "invalid_client"
	// CodeInvalidGrant: the authorization code or refresh token is invalid,
	// expired, revoked, or was issued to another client or redirect URI
	// (RFC 6749 §5.2); also a DPoP key that is not the grant's binding
	// (RFC 9449 §5, §10).
	CodeInvalidGrant ErrorCode = "invalid_grant"
	// CodeUnauthorizedClient: the client may not use this grant type or
	// response type (RFC 6749 §4.1.2.1, §5.2); for revocation, a token
	// issued to another client (RFC 7009 §2.1).
	CodeUnauthorizedClient ErrorCode = "unauthorized_client"
	// CodeUnsupportedGrantType: the grant type is not supported (RFC 6749
	// §5.2).
	CodeUnsupportedGrantType ErrorCode = "unsupported_grant_type"
	// CodeInvalidScope: the requested scope is invalid or exceeds what was
	// granted (RFC 6749 §4.1.2.1, §5.2).
	CodeInvalidScope ErrorCode = "invalid_scope"
	// CodeInvalidTarget: a requested resource is malformed, unknown, or
	// not one the client may have a token for (RFC 8707 §2), answered with
	// 400 at the token endpoint and sent back from the authorization
	// endpoint.
	CodeInvalidTarget ErrorCode = "invalid_target"
	// CodeInvalidRequestURI: a request_uri that is unknown, expired,
	// already used or another client's (RFC 9101 §7, used by RFC 9126 §4).
	CodeInvalidRequestURI ErrorCode = "invalid_request_uri"
	// CodeRequestNotSupported: the request carries a request object
	// (the request parameter), which the server does not support
	// (RFC 9101 §7, OpenID Connect Core §3.1.2.6).
	CodeRequestNotSupported ErrorCode = "request_not_supported"
	// CodeAccessDenied: the resource owner or the server denied the
	// authorization request (RFC 6749 §4.1.2.1).
	CodeAccessDenied ErrorCode = "access_denied"
	// CodeUnsupportedResponseType: the response type is not supported
	// (RFC 6749 §4.1.2.1).
	CodeUnsupportedResponseType ErrorCode = "unsupported_response_type"
	// CodeServerError is used when a request could not be handled because
	// of a failure on the server side, such as a replay cache that is full
	// or down (RFC 6749 §4.1.2.1); the request is refused and the client is
	// not at fault. Token endpoints and resources answer it with HTTP 5xx.
	CodeServerError ErrorCode = "server_error"
	// CodeTemporarilyUnavailable is used when the party a request is
	// charged to has used its share of the replay cache (ErrQuota): it is
	// refused for now, and the error's RetryAfter says when to try again
	// (RFC 6749 §4.1.2.1). Servers answer it with HTTP 429 and Retry-After
	// (RFC 6585 §4).
	CodeTemporarilyUnavailable ErrorCode = "temporarily_unavailable"
	// CodeInvalidToken: the access token is expired, revoked, malformed or
	// not meant for this resource (RFC 6750 §3.1), answered with 401.
	CodeInvalidToken ErrorCode = "invalid_token"
	// CodeInsufficientScope: the access token lacks a scope the request
	// needs (RFC 6750 §3.1), answered with 403.
	CodeInsufficientScope ErrorCode = "insufficient_scope"
	// CodeUnsupportedTokenType: the server cannot revoke this type of token
	// (RFC 7009 §2.2.1).
	CodeUnsupportedTokenType ErrorCode = "unsupported_token_type"
	// CodeInvalidProof (invalid_dpop_proof) is the error code for a DPoP
	// proof that fails any check (RFC 9449 §5, §7.1, §12.2).
	CodeInvalidProof ErrorCode = "invalid_dpop_proof"
	// CodeUseNonce (use_dpop_nonce) tells a client to retry with the server
	// nonce given in the DPoP-Nonce response header (RFC 9449 §8, §9).
	CodeUseNonce ErrorCode = "use_dpop_nonce"
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
	Code        ErrorCode
	Description string
	Nonce       string
	// RetryAfter is, for CodeTemporarilyUnavailable, how long until the
	// party has room again.
	RetryAfter time.Duration
	// Expected and Received are, for an htu mismatch (ErrHTU), the URL the
	// server expected and the htu the proof carried, normalised when they
	// could be, the latter cut to MaxLoggedURL bytes: for the server's
	// logs, so that a wrong BaseURL or proxy path shows at once. They are
	// never sent to the client.
	Expected, Received string
	Err                error
}

// MaxLoggedURL bounds Error.Received, which comes from the request.
const MaxLoggedURL = 256

// LogAttrs returns the slog attributes a server logs for the cause of a
// refusal: "cause", and when err wraps an htu mismatch (*Error with
// Expected or Received), "htu_expected" and "htu_received".
func LogAttrs(err error) []any {
	attrs := []any{"cause", err}
	var e *Error
	if errors.As(err, &e) && (e.Expected != "" || e.Received != "") {
		attrs = append(attrs, "htu_expected", e.Expected, "htu_received", e.Received)
	}
	return attrs
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Code))
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
