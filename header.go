package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"errors"

	"github.com/dpopkit/dpop/internal/jose"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// errPrivateJWK marks a private member in a proof's jwk.
var errPrivateJWK = errors.New("private jwk member")

// errJWKEncoding marks a key member of a proof's jwk that is not base64url.
var errJWKEncoding = errors.New("jwk member not base64url")

// header is what a proof's protected header yields once it has passed every
// header check of RFC 9449 §4.3 (typ, alg, jwk). It depends only on the
// header bytes, so the verifier caches it keyed by them.
type header struct {
	spec jose.Spec
	key  crypto.PublicKey
	jkt  string
}

// parseHeader decodes and checks a protected header (the first segment of the
// compact JWS) under the kit's JOSE profile (internal/jose).
func (v *Verifier) parseHeader(segment string) (*header, *Error) {
	h, err := jose.ParseHeader(segment)
	switch {
	case err == nil:
	case errors.Is(err, jose.ErrCrit):
		// No extension is understood, so any crit is refused (RFC 7515 §4.1.11).
		return nil, invalid(ErrCrit, "crit header is not supported")
	case errors.Is(err, jose.ErrB64):
		return nil, invalid(ErrCrit, "b64 header is not supported")
	case errors.Is(err, jose.ErrHeaderBase64):
		return nil, invalid(ErrMalformed, "header is not base64url")
	case isDuplicate(err):
		return nil, invalid(ErrMalformed, "duplicate header parameter")
	default:
		return nil, invalid(ErrMalformed, "header is not a JSON object")
	}
	if h.Typ != "dpop+jwt" {
		return nil, invalid(ErrTyp, "typ must be dpop+jwt")
	}
	spec, ok := v.algs[h.Alg]
	if !ok {
		return nil, invalid(ErrAlgorithm, "alg is not allowed")
	}
	if h.JWK == nil {
		return nil, invalid(ErrKey, "jwk header is missing")
	}
	key, jkt, e := parseJWK(h.JWK, spec)
	if e != nil {
		return nil, e
	}
	return &header{spec: spec, key: key, jkt: jkt}, nil
}

// jwkNames are the JWK members parseJWK reads (RFC 7517 §4, RFC 7518
// §6.2.1, §6.3.1, RFC 8037 §2), then those that only a private or symmetric
// key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2), from index
// jwkFirstPrivate on.
var jwkNames = []string{"kty", "crv", "x", "y", "n", "e", "d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// jwkFirstPrivate is the index in jwkNames of the first private member.
const jwkFirstPrivate = 6

// keyDescriptions are the refusals of jose.CheckPublicKey, as proof errors.
var keyDescriptions = map[error]string{
	jose.ErrKeyType:     "jwk type not supported",
	jose.ErrCurve:       "jwk curve does not match alg",
	jose.ErrKeyInvalid:  "jwk is not a valid point",
	jose.ErrRSASize:     "RSA key size not accepted",
	jose.ErrRSAExponent: "RSA exponent not accepted",
}

// parseJWK checks the jwk header of a proof and returns the public key and its
// RFC 7638 thumbprint. The key must be a public key of the type and size the
// algorithm requires (RFC 9449 §4.3 checks 6 and 7): the members are read
// strictly here, the key itself is checked by jose.CheckPublicKey.
func parseJWK(raw []byte, spec jose.Spec) (crypto.PublicKey, string, *Error) {
	var kty, crv string
	var coordLen [2]int // decoded lengths of x and y
	_, err := jose.ForEachKnown(raw, jwkNames, func(i int, value []byte) error {
		s, _ := jose.String(value)
		switch {
		case i == 0:
			kty = s
		case i == 1:
			crv = s
		case i >= jwkFirstPrivate:
			return errPrivateJWK
		default: // x, y, n, e
			// RFC 7518 §6.2.1, §6.3.1: base64url, which the JWK library
			// would not insist on (it decodes the standard alphabet too).
			if !jose.IsB64(s) {
				return errJWKEncoding
			}
			if i < 4 {
				coordLen[i-2] = base64.RawURLEncoding.DecodedLen(len(s))
			}
		}
		return nil
	})
	switch {
	case err == errPrivateJWK:
		return nil, "", invalid(ErrKey, "jwk must be a public key")
	case err == errJWKEncoding:
		return nil, "", invalid(ErrKey, "jwk member is not base64url")
	case isDuplicate(err):
		return nil, "", invalid(ErrKey, "duplicate jwk member")
	case err != nil:
		return nil, "", invalid(ErrKey, "jwk is not a JSON object")
	}
	if kty != spec.KTY {
		return nil, "", invalid(ErrKey, "jwk type does not match alg")
	}
	parsed, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, "", invalid(ErrKey, "jwk cannot be parsed")
	}
	if private, err := jwk.IsPrivateKey(parsed); err != nil || private {
		return nil, "", invalid(ErrKey, "jwk must be a public key")
	}
	var key any
	if err := parsed.Raw(&key); err != nil {
		return nil, "", invalid(ErrKey, "jwk cannot be parsed")
	}
	// What the JWK says must match the key it holds: the curve it names,
	// and coordinates of the full field size (RFC 7518 §6.2.1.2).
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		size := (spec.Curve.Params().BitSize + 7) / 8
		if crv != spec.Curve.Params().Name || coordLen != [2]int{size, size} {
			return nil, "", invalid(ErrKey, "jwk curve does not match alg")
		}
	case ed25519.PublicKey:
		if crv != "Ed25519" || coordLen[0] != ed25519.PublicKeySize || len(k) != ed25519.PublicKeySize {
			return nil, "", invalid(ErrKey, "jwk is not an Ed25519 key")
		}
	}
	if err := jose.CheckPublicKey(spec, key); err != nil {
		return nil, "", invalid(ErrKey, keyDescriptions[err])
	}
	jkt, err := Thumbprint(parsed)
	if err != nil {
		return nil, "", invalid(ErrKey, "jwk thumbprint failed")
	}
	return key, jkt, nil
}
