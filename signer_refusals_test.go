package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"strings"
	"testing"
)

// TestNewSignerRefusalReasons checks that NewSigner refuses each kind of bad
// key for its own reason, at the check meant for it, and not later through a
// symptom (a failed thumbprint of a public key that was never set, a failed
// self-check) or a panic.
func TestNewSignerRefusalReasons(t *testing.T) {
	// A point that is not on P-256: its encoding fails.
	offCurve := &ecdsa.PrivateKey{
		PublicKey: ecdsa.PublicKey{Curve: elliptic.P256(), X: big.NewInt(1), Y: big.NewInt(1)},
		D:         big.NewInt(1),
	}
	// A key whose private scalar is zero: NewSigner's test signature fails.
	zeroD := &ecdsa.PrivateKey{PublicKey: testP256().PublicKey, D: new(big.Int)}
	// Keys built from parts: the curve and D without the public point, or a
	// public point without D. NewSigner refuses them instead of panicking.
	noX := &ecdsa.PrivateKey{PublicKey: ecdsa.PublicKey{Curve: elliptic.P256(), Y: testP256().Y}, D: testP256().D}
	noY := &ecdsa.PrivateKey{PublicKey: ecdsa.PublicKey{Curve: elliptic.P256(), X: testP256().X}, D: testP256().D}
	noD := &ecdsa.PrivateKey{PublicKey: testP256().PublicKey}
	withE := func(e int) *rsa.PrivateKey {
		k := *testRSA()
		k.PublicKey.E = e
		return &k
	}
	long := make(ed25519.PrivateKey, ed25519.PrivateKeySize+1)
	copy(long, testEd())
	bits := func(n int) *rsa.PrivateKey {
		return &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), uint(n-1)), E: 65537}}
	}
	tests := []struct {
		name string
		key  crypto.Signer
		alg  string
		want string
	}{
		{"unknown signer", otherSigner{testP256()}, "", "dpop: unsupported key type dpop.otherSigner"},
		{"nil interface", nil, "", "dpop: unsupported key type <nil>"},

		{"nil ECDSA", (*ecdsa.PrivateKey)(nil), "", "dpop: nil ECDSA key"},
		{"ECDSA without curve", &ecdsa.PrivateKey{}, "", "dpop: nil ECDSA key"},
		{"P-224", mustECDSA(elliptic.P224()), "", "dpop: unsupported ECDSA curve"},
		{"P-256 with ES384", testP256(), ES384, `dpop: algorithm "ES384" does not fit an ECDSA P-256 key`},
		{"P-256 with EdDSA", testP256(), EdDSA, `dpop: algorithm "EdDSA" does not fit an ECDSA P-256 key`},
		{"P-384 with ES256", testP384(), ES256, `dpop: algorithm "ES256" does not fit an ECDSA P-384 key`},
		{"ECDSA point off the curve", offCurve, "", "dpop: invalid ECDSA public key"},
		{"ECDSA without X", noX, "", "dpop: invalid ECDSA public key"},
		{"ECDSA without Y", noY, "", "dpop: invalid ECDSA public key"},
		{"ECDSA without D", noD, "", "dpop: invalid ECDSA public key"},
		{"ECDSA zero private scalar", zeroD, "", "dpop: signing proof: "},

		{"Ed25519 of 32 bytes", ed25519.PrivateKey(testEd()[:32]), "", "dpop: invalid Ed25519 key"},
		{"Ed25519 of 65 bytes", long, "", "dpop: invalid Ed25519 key"},
		{"Ed25519 with ES256", testEd(), ES256, `dpop: algorithm "ES256" does not fit an Ed25519 key`},
		{"Ed25519 with PS256", testEd(), PS256, `dpop: algorithm "PS256" does not fit an Ed25519 key`},

		{"nil RSA", (*rsa.PrivateKey)(nil), "", "dpop: nil RSA key"},
		{"RSA without modulus", &rsa.PrivateKey{}, "", "dpop: nil RSA key"},
		{"RSA 2047 bits", bits(2047), "", "dpop: RSA key of 2047 bits is outside 2048 to 8192"},
		{"RSA 8193 bits", bits(8193), "", "dpop: RSA key of 8193 bits is outside 2048 to 8192"},
		{"RSA with ES256", testRSA(), ES256, `dpop: algorithm "ES256" does not fit an RSA key`},
		{"RSA with EdDSA", testRSA(), EdDSA, `dpop: algorithm "EdDSA" does not fit an RSA key`},
		{"RSA exponent 1", withE(1), "", "dpop: invalid RSA public exponent"},
		{"RSA exponent 2", withE(2), "", "dpop: invalid RSA public exponent"},
		{"RSA exponent 4", withE(4), "", "dpop: invalid RSA public exponent"},
		{"RSA exponent 65536", withE(65536), "", "dpop: invalid RSA public exponent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSigner(tc.key, SignerOptions{Algorithm: tc.alg})
			if err == nil || s != nil {
				t.Fatalf("NewSigner = %v, %v; want an error %q", s, err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("NewSigner error = %q, want %q", err, tc.want)
			}
		})
	}
}

// TestSignerProofSigningFailure checks that a Signer whose key can no longer
// sign (here, its private scalar was wiped after NewSigner) returns an error
// and no proof, rather than a proof without a signature.
func TestSignerProofSigningFailure(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSigner(t, key, SignerOptions{})
	if _, err := s.Proof("GET", "https://a.example/", ProofOptions{}); err != nil {
		t.Fatalf("Proof before the key was wiped: %v", err)
	}
	key.D.SetInt64(0)
	p, err := s.Proof("GET", "https://a.example/", ProofOptions{})
	if err == nil || p != "" {
		t.Fatalf("Proof with a wiped key = %q, %v; want no proof and an error", p, err)
	}
	if !strings.HasPrefix(err.Error(), "dpop: signing proof: ") {
		t.Errorf("Proof error = %q, want a signing error", err)
	}
}

// TestSignerProofRefusalReasons checks the reason Proof gives for each kind
// of refused input.
func TestSignerProofRefusalReasons(t *testing.T) {
	s := newTestSigner(t, testP256(), SignerOptions{})
	tests := []struct {
		name, method, url, nonce string
		want                     string
	}{
		{"unparsable", "GET", "https://a.example/%zz", "", "dpop: proof URL does not parse"},
		{"control byte", "GET", "https://a.example/\x7f", "", "dpop: proof URL does not parse"},
		{"relative", "GET", "/token", "", "dpop: proof URL must be absolute"},
		{"opaque", "GET", "https:token", "", "dpop: proof URL must be absolute"},
		{"ftp", "GET", "ftp://a.example/x", "", "dpop: proof URL must be http or https"},
		{"method with space", "GE T", "https://a.example/", "", "dpop: proof method is not an HTTP method token"},
		{"nonce with space", "GET", "https://a.example/", "a b", "dpop: nonce is not 1 to 1024 NQCHARs"},
	}
	for _, tc := range tests {
		p, err := s.Proof(tc.method, tc.url, ProofOptions{Nonce: tc.nonce})
		if err == nil || p != "" {
			t.Errorf("%s: Proof = %q, %v; want no proof and an error", tc.name, p, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: Proof error = %q, want %q", tc.name, err, tc.want)
		}
	}
}
