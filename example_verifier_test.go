package dpop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/dpopkit/dpop"
)

// A token endpoint checks the DPoP header of a request against its public
// address and learns the key thumbprint to bind the access token to.
func ExampleVerifier_VerifyHTTP() {
	verifier, err := dpop.NewVerifier(dpop.VerifierOptions{BaseURL: "https://as.example.com"})
	if err != nil {
		panic(err)
	}

	// The client side: a key and a proof for POST https://as.example.com/token.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(key, dpop.SignerOptions{})
	proof, _ := signer.Proof("POST", "https://as.example.com/token", dpop.ProofOptions{})

	r := httptest.NewRequest("POST", "/token", nil)
	r.Header.Set("DPoP", proof)
	p, err := verifier.VerifyHTTP(context.Background(), r, "")
	if err != nil {
		panic(err)
	}
	fmt.Println("bound to the signer's key:", p.JKT == signer.JKT())

	// The same proof a second time is a replay.
	_, err = verifier.VerifyHTTP(context.Background(), r, "")
	var e *dpop.Error
	fmt.Println(errors.As(err, &e), e.Code, errors.Is(err, dpop.ErrReplay))
	// Output:
	// bound to the signer's key: true
	// true invalid_dpop_proof true
}

// With server nonces, a proof without one is answered with use_dpop_nonce and
// the nonce to send back in the DPoP-Nonce header (RFC 9449 §8).
func ExampleHMACNonceSource() {
	secret := make([]byte, 32) // in production: random, shared by all instances
	nonces, _ := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: secret})
	verifier, _ := dpop.NewVerifier(dpop.VerifierOptions{BaseURL: "https://as.example.com", Nonces: nonces})

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(key, dpop.SignerOptions{})
	proof, _ := signer.Proof("POST", "https://as.example.com/token", dpop.ProofOptions{})

	_, err := verifier.Verify(context.Background(), dpop.Request{Method: "POST", URL: "https://as.example.com/token", Proofs: []string{proof}})
	var e *dpop.Error
	errors.As(err, &e)
	fmt.Println(e.Code, e.Nonce != "")

	proof, _ = signer.Proof("POST", "https://as.example.com/token", dpop.ProofOptions{Nonce: e.Nonce})
	_, err = verifier.Verify(context.Background(), dpop.Request{Method: "POST", URL: "https://as.example.com/token", Proofs: []string{proof}})
	fmt.Println(err)
	// Output:
	// use_dpop_nonce true
	// <nil>
}

// A server with more to check than the proof (a token endpoint checking the
// code or refresh token) calls Check, then its own checks, then Accept: a
// request refused on the way spends nothing. Accept charges the proof to the
// parties the request names, each within its share of the replay cache.
func ExampleVerifier_Check() {
	verifier, _ := dpop.NewVerifier(dpop.VerifierOptions{
		BaseURL: "https://as.example.com",
		Quota:   dpop.Quota{PerClient: 2, PerGrant: -1}, // tiny, to show the refusal
	})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(key, dpop.SignerOptions{})

	for i := range 3 {
		proof, _ := signer.Proof("POST", "https://as.example.com/token", dpop.ProofOptions{})
		req := dpop.Request{Method: "POST", URL: "https://as.example.com/token", Proofs: []string{proof}, Client: "app-1"}
		p, err := verifier.Check(context.Background(), req)
		if err != nil {
			panic(err)
		}
		// ... the grant is checked here; only then:
		err = verifier.Accept(context.Background(), p)
		var e *dpop.Error
		if errors.As(err, &e) {
			fmt.Println(i, e.Code, e.RetryAfter > 0, errors.Is(err, dpop.ErrQuota))
			continue
		}
		fmt.Println(i, "accepted")
	}
	// Output:
	// 0 accepted
	// 1 accepted
	// 2 temporarily_unavailable true true
}
