package jose

import (
	"errors"
	"strings"
	"time"
)

// Client assertions (RFC 7523 §2.2, §3; draft-ietf-oauth-rfc7523bis): a JWT
// a client signs with one of its registered keys to authenticate itself at
// the authorization server (private_key_jwt). The profile's rules apply as
// to every other JWS: the compact serialization, a header without crit or
// b64 and with each parameter once, an algorithm of the allow-list, a key
// that fits it, and claims read strictly. What the claims must say (issuer,
// audience, times, replay) is the caller's policy.

// Refusals of a client assertion by its form (ParseAssertion); ErrSize,
// ErrCompact, ErrMalformed, ErrCrit, ErrB64, ErrClaims, ErrAlgorithm and
// ErrSignature are shared with access tokens.
var (
	// ErrAssertionTyp: typ is neither absent, JWT nor
	// client-authentication+jwt (draft-ietf-oauth-rfc7523bis §4).
	ErrAssertionTyp = errors.New("typ is not client-authentication+jwt")
)

// AssertionType reports whether typ may head a client assertion: absent,
// "JWT" (RFC 7519 §5.1), or "client-authentication+jwt", also with the
// "application/" prefix, compared case-insensitively (RFC 7515 §4.1.9).
// Other explicit types (at+jwt, dpop+jwt…) are refused, so that a token
// made for another purpose cannot pass for an assertion.
func AssertionType(typ string) bool {
	t := strings.TrimPrefix(strings.ToLower(typ), "application/")
	return typ == "" || t == "jwt" || t == "client-authentication+jwt"
}

// AssertionClaims are the claims of a client assertion (RFC 7523 §3).
// Times are zero when absent; Audience is nil when absent and holds one
// element for a string aud. AudienceArray tells a one-element array from a
// string.
type AssertionClaims struct {
	Issuer, Subject, JTI        string
	Audience                    []string
	AudienceArray               bool
	Expiry, NotBefore, IssuedAt time.Time
}

// Assertion is a client assertion whose form and claims ParseAssertion has
// read, but whose signature is not checked yet: nothing in it may be
// trusted before Verify succeeds.
type Assertion struct {
	Header Header
	Claims AssertionClaims
	// signingInput is the header and payload segments with their dot; sig
	// the decoded signature.
	signingInput string
	sig          []byte
}

// ParseAssertion reads a client assertion without verifying it: at most
// MaxJWTBytes (ErrSize); a compact JWS (ErrCompact) whose segments decode
// and whose header is one object (ErrMalformed, ErrCrit, ErrB64, a
// duplicate *MemberError); a typ that AssertionType accepts
// (ErrAssertionTyp); claims as ParseAssertionClaims reads them.
func ParseAssertion(token string) (*Assertion, error) {
	j, err := readJWS(token)
	if err != nil {
		return nil, err
	}
	if !AssertionType(j.header.Typ) {
		return nil, ErrAssertionTyp
	}
	claims, err := ParseAssertionClaims(j.payload)
	if err != nil {
		return nil, err
	}
	return &Assertion{Header: j.header, Claims: *claims, signingInput: j.signingInput, sig: j.sig}, nil
}

// Verify checks the assertion's signature: an alg of the profile that
// allowed holds (ErrAlgorithm), the key that key returns for the header's
// kid ("" when absent; the caller decides whether a key can be chosen
// without one) fit for the alg, and a signature that verifies with it
// (ErrSignature). key's errors are returned as they are.
func (a *Assertion) Verify(allowed map[string]Spec, key KeyFunc) error {
	spec, ok := allowed[a.Header.Alg]
	if !ok {
		return ErrAlgorithm
	}
	pub, err := key(a.Header.Kid, spec)
	if err != nil {
		return err
	}
	if err := CheckPublicKey(spec, pub); err != nil {
		return ErrKeyFit
	}
	if !Verify(spec, pub, a.signingInput, a.sig) {
		return ErrSignature
	}
	return nil
}

// ParseAssertionClaims reads the claims set of a client assertion strictly:
// one JSON object (else ErrClaims), exact member names, none given twice,
// iss, sub and jti JSON strings, aud a string or an array of strings, exp,
// nbf and iat NumericDates (see MaxNumericDate); else a *MemberError naming
// the claim. Other claims are ignored (RFC 7523 §3 item 8).
func ParseAssertionClaims(payload []byte) (*AssertionClaims, error) {
	o, err := claimsObject(payload)
	if err != nil {
		return nil, err
	}
	var c AssertionClaims
	err = o.registeredClaims([]stringClaim{{"iss", &c.Issuer}, {"sub", &c.Subject}, {"jti", &c.JTI}},
		&c.Audience, &c.Expiry, &c.NotBefore, &c.IssuedAt)
	if err != nil {
		return nil, err
	}
	if raw, ok := o["aud"]; ok && len(raw) > 0 && raw[0] == '[' {
		c.AudienceArray = true
	}
	return &c, nil
}
