package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// Digest hashes a JWS signing input with h (SHA-256, SHA-384 or SHA-512).
func Digest(h crypto.Hash, signingInput string) []byte {
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

// Verify checks sig over signingInput with key under spec (RFC 7515 §5.2).
// The caller has checked the key with CheckPublicKey. An ECDSA signature
// must be the fixed-size r||s of RFC 7518 §3.4 (DER is refused), an RSA one
// exactly the modulus size, PSS with a salt as long as the hash (§3.5).
func Verify(spec Spec, key crypto.PublicKey, signingInput string, sig []byte) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if spec.Curve == nil || k.Curve != spec.Curve {
			return false
		}
		size := (spec.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		der := rawToASN1(sig, size)
		return der != nil && ecdsa.VerifyASN1(k, Digest(spec.Hash, signingInput), der)
	case ed25519.PublicKey:
		return spec.KTY == "OKP" && len(sig) == ed25519.SignatureSize && ed25519.Verify(k, []byte(signingInput), sig)
	case *rsa.PublicKey:
		if spec.KTY != "RSA" || len(sig) != k.Size() {
			return false
		}
		if spec.PSS {
			return rsa.VerifyPSS(k, spec.Hash, Digest(spec.Hash, signingInput), sig,
				&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
		return rsa.VerifyPKCS1v15(k, spec.Hash, Digest(spec.Hash, signingInput), sig) == nil
	}
	return false
}

// Sign returns the JWS signature of signingInput (RFC 7515 §5.1) made with
// key under spec: the fixed-size r||s for ECDSA (RFC 7518 §3.4), a PSS salt
// as long as the hash (§3.5). The caller has checked key.Public() with
// CheckPublicKey.
func Sign(spec Spec, key crypto.Signer, signingInput string) ([]byte, error) {
	switch spec.KTY {
	case "EC":
		der, err := key.Sign(rand.Reader, Digest(spec.Hash, signingInput), spec.Hash)
		if err != nil {
			return nil, err
		}
		return asn1ToRaw(der, (spec.Curve.Params().BitSize+7)/8)
	case "OKP":
		return key.Sign(rand.Reader, []byte(signingInput), crypto.Hash(0))
	case "RSA":
		var opts crypto.SignerOpts = spec.Hash
		if spec.PSS {
			opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: spec.Hash}
		}
		return key.Sign(rand.Reader, Digest(spec.Hash, signingInput), opts)
	}
	return nil, fmt.Errorf("jose: cannot sign with %q", spec.Name)
}

// asn1ToRaw turns the DER signature crypto.Signer gives for ECDSA into r||s,
// each left-padded to size bytes (RFC 7518 §3.4).
func asn1ToRaw(der []byte, size int) ([]byte, error) {
	var v struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil || len(rest) != 0 || v.R.Sign() <= 0 || v.S.Sign() <= 0 || v.R.BitLen() > 8*size || v.S.BitLen() > 8*size {
		return nil, errors.New("jose: invalid ECDSA signature values")
	}
	sig := make([]byte, 2*size)
	v.R.FillBytes(sig[:size])
	v.S.FillBytes(sig[size:])
	return sig, nil
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
