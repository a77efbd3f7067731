// Package benchref is the reference measurement the kit's benchmarks are
// compared with: the standard library's verification of one ECDSA P-256
// signature, the physical limit of a DPoP proof check. Every package with a
// performance goal runs it in its own process, so that ratios come from one
// run.
package benchref

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"
)

// RawECDSAVerify measures SHA-256 of a message of msgLen bytes (the length of
// a proof's signing input) and ecdsa.VerifyASN1 of a P-256 signature over it.
func RawECDSAVerify(b *testing.B, msgLen int) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte(strings.Repeat("x", msgLen))
	h := sha256.Sum256(msg)
	sig, err := ecdsa.SignASN1(rand.Reader, priv, h[:])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := sha256.Sum256(msg)
		if !ecdsa.VerifyASN1(&priv.PublicKey, h[:], sig) {
			b.Fatal("signature does not verify")
		}
	}
}
