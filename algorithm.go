package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
)

// Limits on the RSA keys of proofs (RS256/384/512, PS256/384/512), whatever
// the allow-list; parseJWK enforces them and nothing else repeats them.
// RFC 9449 §11.6 leaves it to the server to accept only algorithms, and so
// keys, it deems secure; these bounds keep every proof both strong and cheap
// to check:
//
//   - minRSABits: RFC 7518 §3.3 requires a modulus of at least 2048 bits, and
//     NIST SP 800-131A disallows anything smaller for signatures.
//   - maxRSABits: the cost of a verification grows with the square of the
//     modulus, so 4096 bits (about 3-5× an ES256 check) is the ceiling; an
//     8192-bit key would cost about 4× as much again, for no client need.
//     There is deliberately no option to raise it.
//   - rsaExponent: the public exponent must be exactly 65537 (F4), the value
//     mainstream libraries and WebCrypto generate and the smallest that FIPS
//     186-5 permits (2^16 < e < 2^256). Verification costs one modular
//     squaring per bit of the exponent and one multiplication per set bit, so
//     a large exponent such as 2^31−1 makes a check several times dearer, and
//     a tiny one such as 3 has a history of signature-forgery bugs.
const (
	minRSABits  = 2048
	maxRSABits  = 4096
	rsaExponent = 65537
)

// algorithmSpec describes one JWS algorithm (RFC 7518 §3, RFC 8037 §3.1).
type algorithmSpec struct {
	kty   string         // key type the jwk must have
	curve elliptic.Curve // for ECDSA
	hash  crypto.Hash    // digest; 0 for EdDSA, which signs the message
	pss   bool           // RSASSA-PSS rather than PKCS #1 v1.5
}

var algorithmSpecs = map[string]algorithmSpec{
	ES256:   {kty: "EC", curve: elliptic.P256(), hash: crypto.SHA256},
	ES384:   {kty: "EC", curve: elliptic.P384(), hash: crypto.SHA384},
	ES512:   {kty: "EC", curve: elliptic.P521(), hash: crypto.SHA512},
	EdDSA:   {kty: "OKP"},
	Ed25519: {kty: "OKP"},
	PS256:   {kty: "RSA", hash: crypto.SHA256, pss: true},
	PS384:   {kty: "RSA", hash: crypto.SHA384, pss: true},
	PS512:   {kty: "RSA", hash: crypto.SHA512, pss: true},
	RS256:   {kty: "RSA", hash: crypto.SHA256},
	RS384:   {kty: "RSA", hash: crypto.SHA384},
	RS512:   {kty: "RSA", hash: crypto.SHA512},
}

// digest hashes the JWS signing input.
func digest(h crypto.Hash, signingInput string) []byte {
	switch h {
	case crypto.SHA256:
		s := sha256.Sum256([]byte(signingInput))
		return s[:]
	case crypto.SHA384:
		s := sha512.Sum384([]byte(signingInput))
		return s[:]
	default:
		s := sha512.Sum512([]byte(signingInput))
		return s[:]
	}
}

// verifySignature checks sig over signingInput with key under spec. The key
// has already been checked against spec by parseJWK.
func verifySignature(spec algorithmSpec, key crypto.PublicKey, signingInput string, sig []byte) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		size := (spec.curve.Params().BitSize + 7) / 8
		// JWS uses the fixed-size r||s form (RFC 7518 §3.4); anything else,
		// DER included, is refused.
		if len(sig) != 2*size {
			return false
		}
		der := rawToASN1(sig, size)
		return der != nil && ecdsa.VerifyASN1(k, digest(spec.hash, signingInput), der)
	case ed25519.PublicKey:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k, []byte(signingInput), sig)
	case *rsa.PublicKey:
		if len(sig) != k.Size() {
			return false
		}
		if spec.pss {
			return rsa.VerifyPSS(k, spec.hash, digest(spec.hash, signingInput), sig,
				&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
		return rsa.VerifyPKCS1v15(k, spec.hash, digest(spec.hash, signingInput), sig) == nil
	}
	return false
}

// rawToASN1 turns a JWS ECDSA signature (r||s, each size bytes) into the DER
// SEQUENCE of two INTEGERs that crypto/ecdsa verifies. It returns nil when r
// or s is zero.
func rawToASN1(sig []byte, size int) []byte {
	r, s := trimLeadingZeros(sig[:size]), trimLeadingZeros(sig[size:])
	if len(r) == 0 || len(s) == 0 {
		return nil
	}
	intLen := func(b []byte) int { return 2 + len(b) + int(b[0]>>7) }
	body := intLen(r) + intLen(s) // at most 2×(2+67) = 138 for P-521
	out := make([]byte, 0, 3+body)
	out = append(out, 0x30)
	if body >= 0x80 {
		out = append(out, 0x81)
	}
	out = append(out, byte(body))
	for _, b := range [][]byte{r, s} {
		out = append(out, 0x02, byte(len(b)+int(b[0]>>7)))
		if b[0]&0x80 != 0 {
			out = append(out, 0)
		}
		out = append(out, b...)
	}
	return out
}

func trimLeadingZeros(b []byte) []byte {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return b
}
