// Package dpoptest makes what a DPoP client sends, for tests: signers with
// fresh ES256 keys, proofs, and in-process token requests.
//
// It imports only package dpop and the standard library, so that the tests
// inside packages handlers and middleware can use it: they cannot import
// package testkit, which imports those packages.
package dpoptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dpopkit/dpop"
)

// NewSigner returns a signer with a fresh ES256 (P-256) key. It fails tb
// when the key or the signer cannot be made.
func NewSigner(tb testing.TB) *dpop.Signer {
	tb.Helper()
	return NewSignerWith(tb, dpop.SignerOptions{})
}

// NewSignerWith is NewSigner with options: a clock, say, for proofs whose
// iat is off.
func NewSignerWith(tb testing.TB, opts dpop.SignerOptions) *dpop.Signer {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := dpop.NewSigner(k, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Proof returns a fresh proof by s for a request of method to the absolute
// URL u. It fails tb when s cannot make one.
func Proof(tb testing.TB, s *dpop.Signer, method, u string, opts dpop.ProofOptions) string {
	tb.Helper()
	p, err := s.Proof(method, u, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// ClientCredentialsRequest is an in-process (httptest) client credentials
// token request to target, a path or a URL, authenticated with HTTP Basic
// as client id with secret, and with proof as its DPoP header. Its body is
// a constant, so that a benchmark that makes one per request measures the
// server.
func ClientCredentialsRequest(target, id, secret, proof string) *http.Request {
	const form = "grant_type=client_credentials"
	req := httptest.NewRequest("POST", target, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	req.Header.Set("DPoP", proof)
	return req
}
