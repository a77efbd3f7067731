package adaptertest

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/dpopkit/dpop"
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
	s := newSigner(t)
	pr := a.proof(s, "POST", tokenPath, "")
	r := a.post(tokenPath, clientCredentialsForm(), true, pr)
	wantStatus(t, "token request at A", r, http.StatusOK, "")
	wantStatus(t, "the same proof at B", b.post(tokenPath, clientCredentialsForm(), true, pr),
		http.StatusBadRequest, string(dpop.CodeInvalidProof))

	tok := r.str("access_token")
	pr = a.proof(s, "GET", apiPath, tok)
	wantStatus(t, "API call at A", a.api(tok, pr), http.StatusOK, "")
	r = b.api(tok, pr)
	wantStatus(t, "the same proof at B's API", r, http.StatusUnauthorized, string(dpop.CodeInvalidProof))
	if !strings.Contains(r.header.Get("WWW-Authenticate"), string(dpop.CodeInvalidProof)) {
		t.Errorf("challenge of B's API %q, want %s", r.header.Get("WWW-Authenticate"), string(dpop.CodeInvalidProof))
	}
}

// testTokenAcrossInstances: a token issued by A is accepted by B's API,
// bound to its key.
func testTokenAcrossInstances(t *testing.T, p *pair) {
	s := newSigner(t)
	tok := p.a.token(s)
	r := p.b.apiWith(s, tok)
	wantStatus(t, "A's token at B's API", r, http.StatusOK, "")
	if r.str("sub") != confID || r.str("client_id") != confID || r.str("instance") != "B" {
		t.Fatalf("B's API answered %s, want sub and client_id %q from instance B", r.raw, confID)
	}
	wantStatus(t, "A's token with a proof of another key at B", p.b.apiWith(newSigner(t), tok),
		http.StatusUnauthorized, string(dpop.CodeInvalidToken))
}

// testConcurrentRedemption: 32 redemptions of one code, spread over A and
// B, give exactly one token; the others are replays of the code, which
// revoke its grant (RFC 6749 §4.1.2), so that token stops working at both.
func testConcurrentRedemption(t *testing.T, p *pair) {
	s := newSigner(t)
	code := saveCode(t, p.store)
	const n = 32
	instances := make([]*instance, n)
	reqs := make([]*http.Request, n)
	for i := range n {
		instances[i] = []*instance{p.a, p.b}[i%2]
		reqs[i] = instances[i].postRequest(tokenPath, codeForm(code), false, instances[i].proof(s, "POST", tokenPath, ""))
	}
	replies := make([]reply, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			replies[i], errs[i] = instances[i].send(reqs[i])
		})
	}
	close(start)
	wg.Wait()
	var issued []string
	for i, r := range replies {
		switch {
		case errs[i] != nil:
			t.Errorf("redemption %d at %s: %v", i, instances[i].name, errs[i])
		case r.status == http.StatusOK:
			issued = append(issued, r.str("access_token"))
		case r.status != http.StatusBadRequest || r.str("error") != string(dpop.CodeInvalidGrant):
			t.Errorf("redemption %d at %s: %d %s", i, instances[i].name, r.status, strings.TrimSpace(r.raw))
		}
	}
	if len(issued) != 1 || issued[0] == "" {
		t.Fatalf("%d of %d concurrent redemptions got a token, want exactly 1", len(issued), n)
	}
	for _, k := range []*instance{p.a, p.b} {
		wantStatus(t, "the token of a replayed code at "+k.name, k.apiWith(s, issued[0]),
			http.StatusUnauthorized, string(dpop.CodeInvalidToken))
	}
}

// testNonceAcrossInstances: server nonces (RFC 9449 §8, §9) issued by one
// instance are accepted by the other, at the token endpoint and at the API,
// and refused by an instance with another secret.
func testNonceAcrossInstances(t *testing.T, p *pair) {
	a, b := p.a, p.b
	s := newSigner(t)
	r := a.post(tokenPath, clientCredentialsForm(), true, proof(t, s, "POST", tokenPath, dpop.ProofOptions{}))
	wantStatus(t, "token request without a nonce at A", r, http.StatusBadRequest, string(dpop.CodeUseNonce))
	nonceA := r.header.Get("DPoP-Nonce")
	if nonceA == "" {
		t.Fatal("no DPoP-Nonce from A's token endpoint")
	}
	r = b.post(tokenPath, clientCredentialsForm(), true, proof(t, s, "POST", tokenPath, dpop.ProofOptions{Nonce: nonceA}))
	wantStatus(t, "token request at B with A's nonce", r, http.StatusOK, "")
	tok := r.str("access_token")

	r = b.api(tok, proof(t, s, "GET", apiPath, dpop.ProofOptions{AccessToken: tok}))
	wantStatus(t, "API call without a nonce at B", r, http.StatusUnauthorized, string(dpop.CodeUseNonce))
	nonceB := r.header.Get("DPoP-Nonce")
	if nonceB == "" {
		t.Fatal("no DPoP-Nonce from B's API")
	}
	r = a.api(tok, proof(t, s, "GET", apiPath, dpop.ProofOptions{AccessToken: tok, Nonce: nonceB}))
	wantStatus(t, "API call at A with B's nonce", r, http.StatusOK, "")

	// Control: an instance with another secret refuses both.
	other := newInstance(t, "C", p.store, nonceSource(t, []byte(strings.Repeat("another secret! ", 2))))
	r = other.post(tokenPath, clientCredentialsForm(), true, proof(t, s, "POST", tokenPath, dpop.ProofOptions{Nonce: nonceA}))
	wantStatus(t, "A's nonce at an instance with another secret", r, http.StatusBadRequest, string(dpop.CodeUseNonce))
	r = other.api(tok, proof(t, s, "GET", apiPath, dpop.ProofOptions{AccessToken: tok, Nonce: nonceB}))
	wantStatus(t, "B's nonce at the API of an instance with another secret", r, http.StatusUnauthorized, string(dpop.CodeUseNonce))
}

// testRevocationAcrossInstances: an access token revoked at A (RFC 7009) is
// refused by B.
func testRevocationAcrossInstances(t *testing.T, p *pair) {
	s := newSigner(t)
	tok := p.a.token(s)
	wantStatus(t, "API call at B before revocation", p.b.apiWith(s, tok), http.StatusOK, "")
	wantStatus(t, "revocation at A", p.a.post(revokePath, url.Values{"token": {tok}}, true, ""), http.StatusOK, "")
	wantStatus(t, "API call at B after revocation at A", p.b.apiWith(s, tok), http.StatusUnauthorized, string(dpop.CodeInvalidToken))
}

// testRefreshRevocationAcrossInstances: revoking a refresh token at A
// revokes its grant (RFC 7009 §2.1), so the access token issued with it and
// the refresh token itself stop working at B.
func testRefreshRevocationAcrossInstances(t *testing.T, p *pair) {
	a, b := p.a, p.b
	s := newSigner(t)
	r := a.redeem(s, saveCode(t, p.store))
	wantStatus(t, "code redemption at A", r, http.StatusOK, "")
	at, rt := r.str("access_token"), r.str("refresh_token")
	if rt == "" {
		t.Fatalf("no refresh token: %s", r.raw)
	}
	wantStatus(t, "access token at B", b.apiWith(s, at), http.StatusOK, "")
	r = a.post(revokePath, url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}, "client_id": {pubID}}, false, "")
	wantStatus(t, "refresh token revocation at A", r, http.StatusOK, "")
	wantStatus(t, "access token at B after its grant was revoked at A", b.apiWith(s, at),
		http.StatusUnauthorized, string(dpop.CodeInvalidToken))
	wantStatus(t, "revoked refresh token at B", b.refresh(s, rt), http.StatusBadRequest, string(dpop.CodeInvalidGrant))
}

// testRotationAcrossInstances: a public client's refresh token rotated at B
// and replayed at A revokes the grant everywhere (RFC 9700 §4.14.2).
func testRotationAcrossInstances(t *testing.T, p *pair) {
	a, b := p.a, p.b
	s := newSigner(t)
	r := a.redeem(s, saveCode(t, p.store))
	wantStatus(t, "code redemption at A", r, http.StatusOK, "")
	rt1 := r.str("refresh_token")
	r = b.refresh(s, rt1)
	wantStatus(t, "refresh at B", r, http.StatusOK, "")
	at2, rt2 := r.str("access_token"), r.str("refresh_token")
	if rt2 == "" || rt2 == rt1 {
		t.Fatal("the public client's refresh token was not rotated")
	}
	wantStatus(t, "new access token at A", a.apiWith(s, at2), http.StatusOK, "")
	wantStatus(t, "rotated refresh token replayed at A", a.refresh(s, rt1), http.StatusBadRequest, string(dpop.CodeInvalidGrant))
	wantStatus(t, "access token of the replayed grant at B", b.apiWith(s, at2), http.StatusUnauthorized, string(dpop.CodeInvalidToken))
	wantStatus(t, "new refresh token of the replayed grant at B", b.refresh(s, rt2), http.StatusBadRequest, string(dpop.CodeInvalidGrant))
}
