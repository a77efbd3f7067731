package dpoptest_test

import (
	"context"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
)

// TestProofVerifies: a proof by a fresh signer passes the verifier of the
// request it names, with its key's thumbprint, and the signer's options
// reach it (a clock an hour behind makes proofs a verifier refuses).
func TestProofVerifies(t *testing.T) {
	const base = "https://as.example.test"
	v, err := dpop.NewVerifier(dpop.VerifierOptions{BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	s := dpoptest.NewSigner(t)
	if other := dpoptest.NewSigner(t); other.JKT() == s.JKT() {
		t.Fatal("two signers share a key")
	}
	req := dpoptest.ClientCredentialsRequest("/oauth2/token", "id", "secret", dpoptest.Proof(t, s, "POST", base+"/oauth2/token", dpop.ProofOptions{}))
	p, err := v.VerifyHTTP(context.Background(), req, "")
	if err != nil || p.JKT != s.JKT() {
		t.Fatalf("proof of a fresh signer: %+v, %v", p, err)
	}
	if id, secret, ok := req.BasicAuth(); !ok || id != "id" || secret != "secret" {
		t.Errorf("Basic authentication %q %q %v", id, secret, ok)
	}
	if err := req.ParseForm(); err != nil || req.PostForm.Get("grant_type") != "client_credentials" {
		t.Errorf("form %v, %v", req.PostForm, err)
	}

	late := dpoptest.NewSignerWith(t, dpop.SignerOptions{Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	req = dpoptest.ClientCredentialsRequest(base+"/oauth2/token", "id", "secret", dpoptest.Proof(t, late, "POST", base+"/oauth2/token", dpop.ProofOptions{}))
	if _, err := v.VerifyHTTP(context.Background(), req, ""); err == nil {
		t.Fatal("a proof of a signer an hour late passed")
	}
}
