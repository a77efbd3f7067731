package handlers

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// An assertion's jti is spent only when the request has passed every check
// that spends nothing (the request that will be refused costs no shared
// state): a use_dpop_nonce answer, an unknown code or a refused scope leave
// it unspent, so that the retry may carry the same assertion; once the
// request succeeds, the same assertion is a replay (invalid_client).
func TestClientAssertionSpentLast(t *testing.T) {
	es := key(t, "ec256", "ES256", "es")
	nonces, err := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: []byte(strings.Repeat("n", 32))})
	if err != nil {
		t.Fatal(err)
	}
	h := assertionHarness(t, func(c *Config) { c.DPoP.Nonces = nonces }, "", es)
	tokenURL := h.ts.URL + DefaultPaths.Token
	assertion := assertionFor(t, es, pkjID, h.ts.URL, time.Now(), nil)
	request := func(nonce string, extra url.Values) response {
		form := assertionForm(assertion)
		form.Set("grant_type", GrantClientCredentials)
		for k, v := range extra {
			form[k] = v
		}
		return h.postForm(DefaultPaths.Token, form, map[string]string{"DPoP": proofBy(t, h.signer, "POST", tokenURL, dpop.ProofOptions{Nonce: nonce})})
	}
	r := request("", nil)
	wantError(t, r, http.StatusBadRequest, dpop.CodeUseNonce)
	nonce := r.header.Get("DPoP-Nonce")
	wantError(t, request(nonce, url.Values{"scope": {"admin"}}), http.StatusBadRequest, dpop.CodeInvalidScope)
	wantError(t, request(nonce, url.Values{"resource": {"https://elsewhere.example"}}), http.StatusBadRequest, dpop.CodeInvalidTarget)
	wantToken(t, request(nonce, nil), TokenTypeDPoP)
	wantError(t, request(nonce, nil), http.StatusUnauthorized, dpop.CodeInvalidClient)
}

// The same at the PAR endpoint: a refused pushed request leaves the
// assertion unspent.
func TestClientAssertionSpentLastAtPAR(t *testing.T) {
	es := key(t, "ec256", "ES256", "es")
	h := newPARHarness(t, nil)
	if err := h.store.SaveClient(t.Context(), pkjClient(t, es)); err != nil {
		t.Fatal(err)
	}
	assertion := assertionFor(t, es, pkjID, h.ts.URL, h.clock.Now(), nil)
	push := func(kv ...string) response {
		p := parParams(pkjID, kv...)
		for k, v := range assertionForm(assertion) {
			p[k] = v
		}
		return h.push(p, nil)
	}
	if r := push("code_challenge_method", "plain"); r.status != http.StatusBadRequest {
		t.Fatalf("plain PKCE: %d %s", r.status, r.raw)
	}
	if r := push(); r.status != http.StatusCreated {
		t.Fatalf("the same assertion after a refusal: %d %s", r.status, r.raw)
	}
	if r := push(); r.status != http.StatusUnauthorized {
		t.Fatalf("the same assertion after a success: %d %s", r.status, r.raw)
	}
}

// pkjClient is the private_key_jwt client of the PAR tests, registered with
// the JWKS of k.
func pkjClient(t *testing.T, k testKey) *store.Client {
	return &store.Client{ID: pkjID, JWKS: jwksOf(t, k), GrantTypes: []string{GrantAuthorizationCode},
		RedirectURIs: []string{redirectURI}, Scopes: []string{"read"}}
}

// An assertion's replay entry is charged to its client's share of the
// replay cache (dpop.Quota.PerClient), with its proofs: a client sending
// unique assertions as fast as it can is refused with 429 once its share
// is used, and the assertion over the share is not spent (its retry after
// Retry-After may carry it).
func TestClientAssertionChargedToClientShare(t *testing.T) {
	es := key(t, "ec256", "ES256", "es")
	h := assertionHarness(t, func(c *Config) { c.DPoP.Quota.PerClient = 2 }, "", es)
	introspect := func(a string) response {
		return h.postForm(DefaultPaths.Introspect, url.Values{"token": {"x"}, "client_assertion_type": {ClientAssertionTypeJWT}, "client_assertion": {a}}, nil)
	}
	for i := range 2 {
		if r := introspect(assertionFor(t, es, pkjID, h.ts.URL, time.Now(), nil)); r.status != http.StatusOK {
			t.Fatalf("assertion %d: %d %s", i, r.status, r.raw)
		}
	}
	over := assertionFor(t, es, pkjID, h.ts.URL, time.Now(), nil)
	r := introspect(over)
	wantError(t, r, http.StatusTooManyRequests, dpop.CodeTemporarilyUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// Another client is not affected.
	wantToken(t, h.tokenRequest(ccForm()), TokenTypeDPoP)
}
