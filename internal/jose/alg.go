package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
)

// Limits on RSA keys, for every RSA algorithm (RS256/384/512, PS256/384/512)
// and every use: proofs, and access tokens signed or checked. RFC 9449 §11.6
// leaves it to the server to accept only algorithms, and so keys, it deems
// secure; these bounds keep every signature both strong and cheap to check:
//
//   - MinRSABits: RFC 7518 §3.3 requires a modulus of at least 2048 bits, and
//     NIST SP 800-131A disallows anything smaller for signatures.
//   - MaxRSABits: the cost of a verification grows with the square of the
//     modulus, so 4096 bits (about 3-5× an ES256 check) is the ceiling; an
//     8192-bit key would cost about 4× as much again, for no need.
//   - RSAExponent: the public exponent must be exactly 65537 (F4), the value
//     mainstream libraries and WebCrypto generate and the smallest that FIPS
//     186-5 permits (2^16 < e < 2^256). Verification costs one modular
//     squaring per bit of the exponent and one multiplication per set bit, so
//     a large exponent such as 2^31−1 makes a check several times dearer, and
//     a tiny one such as 3 has a history of signature-forgery bugs.
const (
	MinRSABits  = 2048
	MaxRSABits  = 4096
	RSAExponent = 65537
)

// Spec describes one JWS algorithm of the profile (RFC 7518 §3, RFC 8037
// §3.1, RFC 9864 §2.2).
type Spec struct {
	Name  string
	KTY   string         // the JWK key type the algorithm needs: "EC", "OKP" or "RSA"
	Curve elliptic.Curve // for ECDSA, the curve the algorithm names
	Hash  crypto.Hash    // digest; 0 for EdDSA, which signs the message
	PSS   bool           // RSASSA-PSS rather than PKCS #1 v1.5
}

// names is the allow-list, in the order Names returns it.
var names = []string{"ES256", "ES384", "ES512", "Ed25519", "EdDSA", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512"}

var specs = map[string]Spec{
	"ES256":   {KTY: "EC", Curve: elliptic.P256(), Hash: crypto.SHA256},
	"ES384":   {KTY: "EC", Curve: elliptic.P384(), Hash: crypto.SHA384},
	"ES512":   {KTY: "EC", Curve: elliptic.P521(), Hash: crypto.SHA512},
	"EdDSA":   {KTY: "OKP"}, // with an Ed25519 key (RFC 8037 §3.1)
	"Ed25519": {KTY: "OKP"}, // the fully-specified name (RFC 9864 §2.2)
	"PS256":   {KTY: "RSA", Hash: crypto.SHA256, PSS: true},
	"PS384":   {KTY: "RSA", Hash: crypto.SHA384, PSS: true},
	"PS512":   {KTY: "RSA", Hash: crypto.SHA512, PSS: true},
	"RS256":   {KTY: "RSA", Hash: crypto.SHA256},
	"RS384":   {KTY: "RSA", Hash: crypto.SHA384},
	"RS512":   {KTY: "RSA", Hash: crypto.SHA512},
}

func init() {
	for name, s := range specs {
		s.Name = name
		specs[name] = s
	}
}

// Lookup returns the algorithm named alg (case-sensitive, RFC 7515
// §4.1.1), and false for any name outside the profile: "none", the HMAC
// algorithms and anything unknown.
func Lookup(alg string) (Spec, bool) {
	s, ok := specs[alg]
	return s, ok
}

// Names returns every algorithm of the profile, a new slice each call.
func Names() []string { return append([]string(nil), names...) }

// AllowList checks a caller's list of algorithms against the profile and
// returns it as a set; an empty list means every algorithm of the profile.
// what names the option in the error.
func AllowList(what string, algs []string) (map[string]Spec, error) {
	if len(algs) == 0 {
		algs = names
	}
	set := make(map[string]Spec, len(algs))
	for _, a := range algs {
		s, ok := specs[a]
		if !ok {
			return nil, fmt.Errorf("%s: algorithm %q is not allowed (asymmetric JWS algorithms only: %v)", what, a, names)
		}
		set[a] = s
	}
	return set, nil
}

// Refusals of a key for an algorithm (CheckPublicKey).
var (
	ErrKeyType     = errors.New("key type does not fit the algorithm")
	ErrCurve       = errors.New("curve does not fit the algorithm")
	ErrKeyInvalid  = errors.New("key is not a valid public key")
	ErrRSASize     = fmt.Errorf("RSA modulus is not %d to %d bits", MinRSABits, MaxRSABits)
	ErrRSAExponent = fmt.Errorf("RSA public exponent is not %d", RSAExponent)
)

// CheckPublicKey reports whether pub may sign or verify with the algorithm
// of spec: the key type it needs, the curve it names (RFC 7518 §3.4, RFC
// 8037 §3.1), a valid point, and for RSA the size and exponent of
// MinRSABits, MaxRSABits and RSAExponent. The error is one of ErrKeyType,
// ErrCurve, ErrKeyInvalid, ErrRSASize and ErrRSAExponent, unwrapped.
func CheckPublicKey(spec Spec, pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch {
		case spec.KTY != "EC":
			return ErrKeyType
		case k.Curve != spec.Curve:
			return ErrCurve
		}
		if _, err := k.ECDH(); err != nil {
			return ErrKeyInvalid
		}
	case ed25519.PublicKey:
		switch {
		case spec.KTY != "OKP":
			return ErrKeyType
		case len(k) != ed25519.PublicKeySize:
			return ErrKeyInvalid
		}
	case *rsa.PublicKey:
		switch {
		case spec.KTY != "RSA":
			return ErrKeyType
		case k.N == nil || k.N.BitLen() < MinRSABits || k.N.BitLen() > MaxRSABits:
			return ErrRSASize
		case k.E != RSAExponent:
			return ErrRSAExponent
		}
	default:
		return ErrKeyType
	}
	return nil
}

// KeyProblem describes why CheckPublicKey refused pub, for configuration
// errors: the sentinel with the size or curve found.
func KeyProblem(spec Spec, pub crypto.PublicKey, err error) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if errors.Is(err, ErrRSASize) && k.N != nil {
			return fmt.Errorf("%s: %w (%d bits)", spec.Name, err, k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if errors.Is(err, ErrCurve) && k.Curve != nil {
			return fmt.Errorf("%s: %w (%s, not %s)", spec.Name, err, k.Curve.Params().Name, spec.Curve.Params().Name)
		}
	}
	return fmt.Errorf("%s: %w (%T)", spec.Name, err, pub)
}
