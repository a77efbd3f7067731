package dpop

import "math"

// claims holds the members of a proof's payload that RFC 9449 §4.2 defines.
type claims struct {
	jti, htm, htu, ath, nonce string
	iat                       float64
	hasNonce                  bool
}

// maxNumericDate bounds iat to year 5138, so that converting it to a
// time.Time cannot overflow; anything outside fails the freshness check.
const maxNumericDate = 1e11

// parseClaims reads the payload strictly: the required claims must be present
// with their JSON types (strings; iat a number), nothing is coerced, and a
// claim given twice is refused (RFC 9449 §4.3 checks 3 and 4).
func (v *Verifier) parseClaims(payload []byte) (claims, *Error) {
	var c claims
	var seen uint8
	var bad *Error
	err := forEachMember(payload, func(name, value []byte) error {
		var bit uint8
		var dst *string
		switch string(name) {
		case "jti":
			bit, dst = 1, &c.jti
		case "htm":
			bit, dst = 2, &c.htm
		case "htu":
			bit, dst = 4, &c.htu
		case "iat":
			bit = 8
		case "ath":
			bit, dst = 16, &c.ath
		case "nonce":
			bit, dst = 32, &c.nonce
			c.hasNonce = true
		default:
			return nil
		}
		if seen&bit != 0 {
			bad = invalid(ErrMalformed, "duplicate claim")
			return bad
		}
		seen |= bit
		ok := false
		if dst != nil {
			*dst, ok = jsonString(value)
		} else {
			c.iat, ok = jsonNumber(value)
			ok = ok && !math.IsNaN(c.iat) && math.Abs(c.iat) < maxNumericDate
		}
		if !ok {
			bad = invalid(ErrClaims, "claim has the wrong type")
			return bad
		}
		return nil
	})
	if bad != nil {
		return c, bad
	}
	if err != nil {
		return c, invalid(ErrMalformed, "payload is not a JSON object")
	}
	if seen&15 != 15 {
		return c, invalid(ErrClaims, "jti, htm, htu and iat are required")
	}
	if c.jti == "" || len(c.jti) > v.opts.MaxJTILength {
		return c, invalid(ErrJTI, "jti is empty or too long")
	}
	return c, nil
}
