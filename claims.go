package dpop

import "github.com/dpopkit/dpop/internal/jose"

// claimNames are the claims of RFC 9449 §4.2, in the order parseClaims
// numbers them: the first four are required.
var claimNames = []string{"jti", "htm", "htu", "iat", "ath", "nonce"}

// claims holds the members of a proof's payload that RFC 9449 §4.2 defines.
type claims struct {
	jti, htm, htu, ath, nonce string
	iat                       float64
	hasNonce                  bool
}

// parseClaims reads the payload strictly: the required claims must be present
// with their JSON types (strings; iat a NumericDate under the kit's one rule,
// jose.MaxNumericDate), nothing is coerced, and a claim given twice is
// refused (RFC 9449 §4.3 checks 3 and 4).
func (v *Verifier) parseClaims(payload []byte) (claims, *Error) {
	var c claims
	var bad *Error
	dst := [...]*string{&c.jti, &c.htm, &c.htu, nil, &c.ath, &c.nonce}
	seen, err := jose.ForEachKnown(payload, claimNames, func(i int, value []byte) error {
		ok := false
		if dst[i] != nil {
			*dst[i], ok = jose.String(value)
		} else {
			c.iat, ok = jose.NumericDate(value)
		}
		if !ok {
			bad = invalid(ErrClaims, "claim has the wrong type")
			return bad
		}
		return nil
	})
	switch {
	case bad != nil:
		return c, bad
	case isDuplicate(err):
		return c, invalid(ErrMalformed, "duplicate claim")
	case err != nil:
		return c, invalid(ErrMalformed, "payload is not a JSON object")
	}
	c.hasNonce = seen&32 != 0
	if seen&15 != 15 {
		return c, invalid(ErrClaims, "jti, htm, htu and iat are required")
	}
	if c.jti == "" || len(c.jti) > v.opts.MaxJTILength {
		return c, invalid(ErrJTI, "jti is empty or too long")
	}
	return c, nil
}

// isDuplicate reports whether err is the profile's refusal of a member given
// twice. A type assertion, not errors.As: the target of errors.As escapes,
// and this runs on every proof.
func isDuplicate(err error) bool {
	_, ok := err.(*jose.MemberError)
	return ok
}
