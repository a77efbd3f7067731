package dpop

import "errors"

// RefusalReason says, in one word from a closed set, why a DPoP proof was
// refused: the reason label of a refusal counter (dpop_proofs_total). It is
// derived from the sentinel cause of the verifier's [*Error] by [ReasonOf];
// every sentinel maps to exactly one reason.
type RefusalReason string

// Refusal reasons, each with the checks of RFC 9449 §4.3 (or the replay
// cache, §11.1) it stands for. The set is closed: a new sentinel is given
// one of these or a new constant here, and nowhere else.
const (
	// ReasonNone is the reason of an accepted proof.
	ReasonNone RefusalReason = ""
	// ReasonMissing: no DPoP header where a proof is required (§4.3
	// check 1, §7.1).
	ReasonMissing RefusalReason = "missing"
	// ReasonMalformed: not exactly one proof, too large, not a compact
	// JWS, a wrong typ, an unsupported crit header, a missing or mistyped
	// claim, an invalid jti (§4.3 checks 1–4, 7).
	ReasonMalformed RefusalReason = "malformed"
	// ReasonAlgorithm: an alg outside the accepted list (§4.3 check 5).
	ReasonAlgorithm RefusalReason = "algorithm"
	// ReasonKey: an unacceptable jwk header: a private or symmetric key, a
	// key that does not fit its alg (§4.3 check 5).
	ReasonKey RefusalReason = "key"
	// ReasonSignature: the signature does not verify (§4.3 check 6).
	ReasonSignature RefusalReason = "signature"
	// ReasonHTM: htm is not the request method (§4.3 check 8).
	ReasonHTM RefusalReason = "htm"
	// ReasonHTU: htu is not the request URL (§4.3 check 9).
	ReasonHTU RefusalReason = "htu"
	// ReasonNonce: a server nonce is required and missing, stale or
	// unknown (§4.3 check 10, §8, §9).
	ReasonNonce RefusalReason = "nonce"
	// ReasonIAT: iat is outside the acceptable window (§4.3 check 11).
	ReasonIAT RefusalReason = "iat"
	// ReasonATH: ath is missing or does not match the access token (§4.3
	// check 12, §7).
	ReasonATH RefusalReason = "ath"
	// ReasonKeyMismatch: the proof key is not the key the token, code or
	// refresh token is bound to (§5, §7.1, §10).
	ReasonKeyMismatch RefusalReason = "key_mismatch"
	// ReasonReplay: the proof was accepted before (§11.1).
	ReasonReplay RefusalReason = "replay"
	// ReasonCapacity: the party is over its replay cache quota, or the
	// cache is full (§11.1, [ErrQuota], [ErrReplayCacheFull]).
	ReasonCapacity RefusalReason = "capacity"
	// ReasonUnavailable: the replay cache or the nonce source is down: the
	// proof could not be checked, and the client is not at fault.
	ReasonUnavailable RefusalReason = "unavailable"
	// ReasonInternal: the verifier was misused ([ErrNotChecked]), or the
	// error wraps none of the sentinels of this package.
	ReasonInternal RefusalReason = "internal"
)

// reasons maps each sentinel cause of errors.go to its reason: the one
// mapping of the kit.
var reasons = [...]struct {
	err    error
	reason RefusalReason
}{
	{ErrMissingProof, ReasonMissing},
	{ErrMultipleProofs, ReasonMalformed},
	{ErrMalformed, ReasonMalformed},
	{ErrTooLarge, ReasonMalformed},
	{ErrTyp, ReasonMalformed},
	{ErrCrit, ReasonMalformed},
	{ErrClaims, ReasonMalformed},
	{ErrJTI, ReasonMalformed},
	{ErrAlgorithm, ReasonAlgorithm},
	{ErrKey, ReasonKey},
	{ErrSignature, ReasonSignature},
	{ErrHTM, ReasonHTM},
	{ErrHTU, ReasonHTU},
	{ErrStale, ReasonIAT},
	{ErrATH, ReasonATH},
	{ErrNonce, ReasonNonce},
	{ErrKeyMismatch, ReasonKeyMismatch},
	{ErrReplay, ReasonReplay},
	{ErrQuota, ReasonCapacity},
	{ErrReplayCacheFull, ReasonCapacity},
	{ErrReplayCacheUnavailable, ReasonUnavailable},
	{ErrNotChecked, ReasonInternal},
}

// ReasonOf returns the reason of a proof refusal: ReasonNone for nil, the
// reason of the sentinel err wraps (errors.Is), and ReasonInternal for an
// error that wraps none. An [*Error] answered with CodeServerError is
// ReasonUnavailable unless its cause is a full cache (ReasonCapacity): a
// nonce source that is down fails a proof that wraps ErrNonce, and the
// client is not at fault.
func ReasonOf(err error) RefusalReason {
	if err == nil {
		return ReasonNone
	}
	r := ReasonInternal
	for _, m := range reasons {
		if errors.Is(err, m.err) {
			r = m.reason
			break
		}
	}
	var e *Error
	if r != ReasonCapacity && errors.As(err, &e) && e.Code == CodeServerError {
		return ReasonUnavailable
	}
	return r
}
