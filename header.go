package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// header is what a proof's protected header yields once it has passed every
// header check of RFC 9449 §4.3 (typ, alg, jwk). It depends only on the
// header bytes, so the verifier caches it keyed by them.
type header struct {
	alg  string
	spec algorithmSpec
	key  crypto.PublicKey
	jkt  string
}

var b64 = base64.RawURLEncoding.Strict()

// parseHeader decodes and checks a protected header (the first segment of the
// compact JWS).
func (v *Verifier) parseHeader(segment string) (*header, *Error) {
	raw, err := b64.DecodeString(segment)
	if err != nil {
		return nil, invalid(ErrMalformed, "header is not base64url")
	}
	var typ, alg string
	var jwkRaw []byte
	var seen uint8
	err = forEachMember(raw, func(name, value []byte) error {
		var bit uint8
		switch string(name) {
		case "typ":
			bit = 1
			typ, _ = jsonString(value)
			if typ == "" {
				typ = "\x00" // present but not a string: never equal to dpop+jwt
			}
		case "alg":
			bit = 2
			alg, _ = jsonString(value)
		case "jwk":
			bit = 4
			jwkRaw = value
		case "crit":
			// No extension is understood, so any crit is refused (RFC 7515 §4.1.11).
			return invalid(ErrCrit, "crit header is not supported")
		default:
			return nil
		}
		if seen&bit != 0 {
			return invalid(ErrMalformed, "duplicate header parameter")
		}
		seen |= bit
		return nil
	})
	if err != nil {
		if e, ok := err.(*Error); ok {
			return nil, e
		}
		return nil, invalid(ErrMalformed, "header is not a JSON object")
	}
	if typ != "dpop+jwt" {
		return nil, invalid(ErrTyp, "typ must be dpop+jwt")
	}
	if _, ok := v.algs[alg]; !ok {
		return nil, invalid(ErrAlgorithm, "alg is not allowed")
	}
	spec := algorithmSpecs[alg]
	if jwkRaw == nil {
		return nil, invalid(ErrKey, "jwk header is missing")
	}
	key, jkt, e := parseJWK(jwkRaw, spec)
	if e != nil {
		return nil, e
	}
	return &header{alg: alg, spec: spec, key: key, jkt: jkt}, nil
}

// privateJWKMembers are the members that only a private or symmetric key has
// (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
var privateJWKMembers = map[string]bool{"d": true, "p": true, "q": true, "dp": true, "dq": true, "qi": true, "oth": true, "k": true}

// parseJWK checks the jwk header of a proof and returns the public key and its
// RFC 7638 thumbprint. The key must be a public key of the type and size the
// algorithm requires (RFC 9449 §4.3 checks 6 and 7).
func parseJWK(raw []byte, spec algorithmSpec) (crypto.PublicKey, string, *Error) {
	var kty, crv string
	var coordLen [2]int // decoded lengths of x and y
	var seen uint8
	err := forEachMember(raw, func(name, value []byte) error {
		var bit uint8
		switch n := string(name); {
		case privateJWKMembers[n]:
			return invalid(ErrKey, "jwk must be a public key")
		case n == "kty":
			bit = 1
			kty, _ = jsonString(value)
		case n == "crv":
			bit = 2
			crv, _ = jsonString(value)
		case n == "x", n == "y":
			bit = 4
			i := 0
			if n == "y" {
				bit, i = 8, 1
			}
			s, _ := jsonString(value)
			coordLen[i] = base64.RawURLEncoding.DecodedLen(len(s))
		default:
			return nil
		}
		if seen&bit != 0 {
			return invalid(ErrKey, "duplicate jwk member")
		}
		seen |= bit
		return nil
	})
	if err != nil {
		if e, ok := err.(*Error); ok {
			return nil, "", e
		}
		return nil, "", invalid(ErrKey, "jwk is not a JSON object")
	}
	if kty != spec.kty {
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
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		size := (spec.curve.Params().BitSize + 7) / 8
		// Coordinates have the full field size (RFC 7518 §6.2.1.2), and the
		// point is on the curve the algorithm names.
		if k.Curve != spec.curve || crv != spec.curve.Params().Name || coordLen != [2]int{size, size} {
			return nil, "", invalid(ErrKey, "jwk curve does not match alg")
		}
		if _, err := k.ECDH(); err != nil {
			return nil, "", invalid(ErrKey, "jwk is not a valid point")
		}
	case ed25519.PublicKey:
		if crv != "Ed25519" || len(k) != ed25519.PublicKeySize || coordLen[0] != ed25519.PublicKeySize {
			return nil, "", invalid(ErrKey, "jwk is not an Ed25519 key")
		}
	case *rsa.PublicKey:
		// The bounds, and why, are on minRSABits, maxRSABits and rsaExponent.
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, "", invalid(ErrKey, "RSA key size not accepted")
		}
		if k.E != rsaExponent {
			return nil, "", invalid(ErrKey, "RSA exponent not accepted")
		}
	default:
		return nil, "", invalid(ErrKey, "jwk type not supported")
	}
	jkt, err := Thumbprint(parsed)
	if err != nil {
		return nil, "", invalid(ErrKey, "jwk thumbprint failed")
	}
	return key, jkt, nil
}
