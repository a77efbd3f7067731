package adaptertest

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
)

// RunInstances runs the several-instances suite: two complete instances of
// one service, A and B (the handlers of package handlers, and an API behind
// package middleware with a middleware.StoreValidator), each on a listener
// of its own and over its own connection to one store (newStores), with the
// same public issuer and resource URL and, where nonces are on, one nonce
// secret. Over HTTP, it
// checks that the store makes them one service:
//
//   - a proof accepted by A is refused by B, at the token endpoint and at
//     the API;
//   - a token issued by A is accepted by B's middleware, with a proof of its
//     key only;
//   - of 32 concurrent redemptions of one code spread over A and B, exactly
//     one gets a token, and the others revoke it at both;
//   - a server nonce issued by A is accepted by B, and one of B by A;
//   - revoking an access token, or a refresh token (and so its grant), at A
//     takes effect at B, and so does a rotated refresh token replayed at A.
//
// Each subtest gets a fresh pair of stores from newStores and starts A on
// the first and B on the second; subtests whose outcome could depend on
// server nonces run once without and once with them.
func RunInstances(t *testing.T, newStores NewStores) {
	both := func(test func(*testing.T, *pair)) func(*testing.T) {
		return func(t *testing.T) {
			t.Run("WithoutNonces", func(t *testing.T) { test(t, newPair(t, newStores, false)) })
			t.Run("WithNonces", func(t *testing.T) { test(t, newPair(t, newStores, true)) })
		}
	}
	t.Run("ProofReplay", both(testProofReplay))
	t.Run("TokenFromAAcceptedByB", both(testTokenAcrossInstances))
	t.Run("ConcurrentCodeRedemption", both(testConcurrentRedemption))
	t.Run("NonceFromAAcceptedByB", func(t *testing.T) { testNonceAcrossInstances(t, newPair(t, newStores, true)) })
	t.Run("RevocationAtASeenByB", both(testRevocationAcrossInstances))
	t.Run("RefreshRevocationAtASeenByB", both(testRefreshRevocationAcrossInstances))
	t.Run("RefreshRotationAcrossInstances", both(testRotationAcrossInstances))
}

// testProofReplay: a proof accepted by A is a replay at B (RFC 9449 §11.1),
// at the token endpoint and at the API.
func testProofReplay(t *testing.T, p *pair) {
	a, b := p.a, p.b
	s := dpoptest.NewSigner(t)
	pr := a.Proof(t, s, "POST", testkit.TokenPath, "")
	r := a.Post(t, testkit.TokenPath, testkit.ClientCredentialsForm(), true, pr)
	testkit.WantStatus(t, "token request at A", r, http.StatusOK, "")
	testkit.WantStatus(t, "the same proof at B", b.Post(t, testkit.TokenPath, testkit.ClientCredentialsForm(), true, pr),
		http.StatusBadRequest, string(dpop.CodeInvalidProof))

	tok := r.Str("access_token")
	pr = a.Proof(t, s, "GET", testkit.APIPath, tok)
	testkit.WantStatus(t, "API call at A", a.API(t, tok, pr), http.StatusOK, "")
	r = b.API(t, tok, pr)
	testkit.WantStatus(t, "the same proof at B's API", r, http.StatusUnauthorized, string(dpop.CodeInvalidProof))
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), string(dpop.CodeInvalidProof)) {
		t.Errorf("challenge of B's API %q, want %s", r.Header.Get("WWW-Authenticate"), string(dpop.CodeInvalidProof))
	}
}

// testTokenAcrossInstances: a token issued by A is accepted by B's API,
// bound to its key.
func testTokenAcrossInstances(t *testing.T, p *pair) {
	s := dpoptest.NewSigner(t)
	tok := p.a.Token(t, s)
	r := p.b.APIWith(t, s, tok)
	testkit.WantStatus(t, "A's token at B's API", r, http.StatusOK, "")
	if r.Str("sub") != testkit.ConfID || r.Str("client_id") != testkit.ConfID || r.Str("instance") != "B" {
		t.Fatalf("B's API answered %s, want sub and client_id %q from instance B", r.Raw, testkit.ConfID)
	}
	testkit.WantStatus(t, "A's token with a proof of another key at B", p.b.APIWith(t, dpoptest.NewSigner(t), tok),
		http.StatusUnauthorized, string(dpop.CodeInvalidToken))
}

// testConcurrentRedemption: 32 redemptions of one code, spread over A and
// B, give exactly one token; the others are replays of the code, which
// revoke its grant (RFC 6749 §4.1.2), so that token stops working at both.
func testConcurrentRedemption(t *testing.T, p *pair) {
	s := dpoptest.NewSigner(t)
	code := testkit.SaveCode(t, p.store)
	const n = 32
	instances := make([]*testkit.Kit, n)
	reqs := make([]*http.Request, n)
	for i := range n {
		instances[i] = []*testkit.Kit{p.a, p.b}[i%2]
		reqs[i] = instances[i].PostRequest(t, testkit.TokenPath, testkit.CodeForm(code), false, instances[i].Proof(t, s, "POST", testkit.TokenPath, ""))
	}
	replies := make([]testkit.Reply, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			replies[i], errs[i] = instances[i].Send(reqs[i])
		})
	}
	close(start)
	wg.Wait()
	var issued []string
	for i, r := range replies {
		switch {
		case errs[i] != nil:
			t.Errorf("redemption %d at %s: %v", i, instances[i].Name, errs[i])
		case r.Status == http.StatusOK:
			issued = append(issued, r.Str("access_token"))
		case r.Status != http.StatusBadRequest || r.Str("error") != string(dpop.CodeInvalidGrant):
			t.Errorf("redemption %d at %s: %d %s", i, instances[i].Name, r.Status, strings.TrimSpace(r.Raw))
		}
	}
	if len(issued) != 1 || issued[0] == "" {
		t.Fatalf("%d of %d concurrent redemptions got a token, want exactly 1", len(issued), n)
	}
	for _, k := range []*testkit.Kit{p.a, p.b} {
		testkit.WantStatus(t, "the token of a replayed code at "+k.Name, k.APIWith(t, s, issued[0]),
			http.StatusUnauthorized, string(dpop.CodeInvalidToken))
	}
}

// testNonceAcrossInstances: server nonces (RFC 9449 §8, §9) issued by one
// instance are accepted by the other, at the token endpoint and at the API,
// and refused by an instance with another secret.
func testNonceAcrossInstances(t *testing.T, p *pair) {
	a, b := p.a, p.b
	s := dpoptest.NewSigner(t)
	r := a.Post(t, testkit.TokenPath, testkit.ClientCredentialsForm(), true, testkit.Proof(t, s, "POST", testkit.TokenPath, dpop.ProofOptions{}))
	testkit.WantStatus(t, "token request without a nonce at A", r, http.StatusBadRequest, string(dpop.CodeUseNonce))
	nonceA := r.Header.Get("DPoP-Nonce")
	if nonceA == "" {
		t.Fatal("no DPoP-Nonce from A's token endpoint")
	}
	r = b.Post(t, testkit.TokenPath, testkit.ClientCredentialsForm(), true, testkit.Proof(t, s, "POST", testkit.TokenPath, dpop.ProofOptions{Nonce: nonceA}))
	testkit.WantStatus(t, "token request at B with A's nonce", r, http.StatusOK, "")
	tok := r.Str("access_token")

	r = b.API(t, tok, testkit.Proof(t, s, "GET", testkit.APIPath, dpop.ProofOptions{AccessToken: tok}))
	testkit.WantStatus(t, "API call without a nonce at B", r, http.StatusUnauthorized, string(dpop.CodeUseNonce))
	nonceB := r.Header.Get("DPoP-Nonce")
	if nonceB == "" {
		t.Fatal("no DPoP-Nonce from B's API")
	}
	r = a.API(t, tok, testkit.Proof(t, s, "GET", testkit.APIPath, dpop.ProofOptions{AccessToken: tok, Nonce: nonceB}))
	testkit.WantStatus(t, "API call at A with B's nonce", r, http.StatusOK, "")

	// Control: an instance with another secret refuses both.
	other := instance(t, "C", p.store, nonceSource(t, []byte(strings.Repeat("another secret! ", 2))))
	r = other.Post(t, testkit.TokenPath, testkit.ClientCredentialsForm(), true, testkit.Proof(t, s, "POST", testkit.TokenPath, dpop.ProofOptions{Nonce: nonceA}))
	testkit.WantStatus(t, "A's nonce at an instance with another secret", r, http.StatusBadRequest, string(dpop.CodeUseNonce))
	r = other.API(t, tok, testkit.Proof(t, s, "GET", testkit.APIPath, dpop.ProofOptions{AccessToken: tok, Nonce: nonceB}))
	testkit.WantStatus(t, "B's nonce at the API of an instance with another secret", r, http.StatusUnauthorized, string(dpop.CodeUseNonce))
}

// testRevocationAcrossInstances: an access token revoked at A (RFC 7009) is
// refused by B.
func testRevocationAcrossInstances(t *testing.T, p *pair) {
	s := dpoptest.NewSigner(t)
	tok := p.a.Token(t, s)
	testkit.WantStatus(t, "API call at B before revocation", p.b.APIWith(t, s, tok), http.StatusOK, "")
	testkit.WantStatus(t, "revocation at A", p.a.Post(t, testkit.RevokePath, url.Values{"token": {tok}}, true, ""), http.StatusOK, "")
	testkit.WantStatus(t, "API call at B after revocation at A", p.b.APIWith(t, s, tok), http.StatusUnauthorized, string(dpop.CodeInvalidToken))
}

// testRefreshRevocationAcrossInstances: revoking a refresh token at A
// revokes its grant (RFC 7009 §2.1), so the access token issued with it and
// the refresh token itself stop working at B.
func testRefreshRevocationAcrossInstances(t *testing.T, p *pair) {
	a, b := p.a, p.b
	s := dpoptest.NewSigner(t)
	r := a.Redeem(t, s, testkit.SaveCode(t, p.store))
	testkit.WantStatus(t, "code redemption at A", r, http.StatusOK, "")
	at, rt := r.Str("access_token"), r.Str("refresh_token")
	if rt == "" {
		t.Fatalf("no refresh token: %s", r.Raw)
	}
	testkit.WantStatus(t, "access token at B", b.APIWith(t, s, at), http.StatusOK, "")
	r = a.Post(t, testkit.RevokePath, url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}, "client_id": {testkit.PubID}}, false, "")
	testkit.WantStatus(t, "refresh token revocation at A", r, http.StatusOK, "")
	testkit.WantStatus(t, "access token at B after its grant was revoked at A", b.APIWith(t, s, at),
		http.StatusUnauthorized, string(dpop.CodeInvalidToken))
	testkit.WantStatus(t, "revoked refresh token at B", b.Refresh(t, s, rt), http.StatusBadRequest, string(dpop.CodeInvalidGrant))
}

// testRotationAcrossInstances: a public client's refresh token rotated at B
// and replayed at A revokes the grant everywhere (RFC 9700 §4.14.2).
func testRotationAcrossInstances(t *testing.T, p *pair) {
	a, b := p.a, p.b
	s := dpoptest.NewSigner(t)
	r := a.Redeem(t, s, testkit.SaveCode(t, p.store))
	testkit.WantStatus(t, "code redemption at A", r, http.StatusOK, "")
	rt1 := r.Str("refresh_token")
	r = b.Refresh(t, s, rt1)
	testkit.WantStatus(t, "refresh at B", r, http.StatusOK, "")
	at2, rt2 := r.Str("access_token"), r.Str("refresh_token")
	if rt2 == "" || rt2 == rt1 {
		t.Fatal("the public client's refresh token was not rotated")
	}
	testkit.WantStatus(t, "new access token at A", a.APIWith(t, s, at2), http.StatusOK, "")
	testkit.WantStatus(t, "rotated refresh token replayed at A", a.Refresh(t, s, rt1), http.StatusBadRequest, string(dpop.CodeInvalidGrant))
	testkit.WantStatus(t, "access token of the replayed grant at B", b.APIWith(t, s, at2), http.StatusUnauthorized, string(dpop.CodeInvalidToken))
	testkit.WantStatus(t, "new refresh token of the replayed grant at B", b.Refresh(t, s, rt2), http.StatusBadRequest, string(dpop.CodeInvalidGrant))
}
