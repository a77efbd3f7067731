package handlers

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// New refuses a configuration that contradicts the FAPI 2.0 profile, with an
// error naming the conflict, and fills in what the profile implies.
func TestFAPI2ProfileConfiguration(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	rs256 := jwk.NewSet()
	k, _ := jwk.FromRaw(keyPool(t)["rsa2048"])
	k.Set(jwk.KeyIDKey, "rs")
	k.Set(jwk.AlgorithmKey, jwa.RS256)
	rs256.AddKey(k)
	base := func(edit func(*Config)) Config {
		c := Config{Issuer: "https://as.example", Store: m, Profile: ProfileFAPI2}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	for _, tc := range []struct {
		name, want string
		cfg        Config
	}{
		{"a DPoP proof is required for every token: AllowBearer", "AllowBearer", base(func(c *Config) { c.AllowBearer = true })},
		{"codes live at most 60 s", "CodeTTL", base(func(c *Config) { c.CodeTTL = 61 * time.Second })},
		{"algorithms PS256/ES256/EdDSA only: proofs", "DPoP.Algorithms", base(func(c *Config) { c.DPoP.Algorithms = []string{"ES256", "RS256"} })},
		{"algorithms PS256/ES256/EdDSA only: assertions", "ClientAssertion.Algorithms", base(func(c *Config) { c.ClientAssertion.Algorithms = []string{"ES384"} })},
		{"algorithms PS256/ES256/EdDSA only: issued JWTs", "SigningKeys[0]", base(func(c *Config) { c.AccessTokenFormat, c.SigningKeys = FormatJWT, rs256 })},
		{"aud must be the issuer identifier, as a string: no legacy audience", "LegacyAudience", base(func(c *Config) { c.ClientAssertion.LegacyAudience = true })},
		{"PAR required: a store without pushed requests", "PushedRequestStore", base(func(c *Config) { c.Store = struct{ store.Store }{m} })},
		{"an unknown profile", "unknown Config.Profile", base(func(c *Config) { c.Profile = "fapi1" })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tc.want)
			}
		})
	}
	s, err := New(base(nil))
	if err != nil {
		t.Fatal(err)
	}
	c := s.cfg
	if !c.RequirePAR || !c.RequirePKCE || !c.ClientAssertion.StrictAudience || c.CodeTTL > time.Minute ||
		!reflect.DeepEqual(s.Verifier().Algorithms(), []string{"PS256", "ES256", "EdDSA", "Ed25519"}) ||
		!reflect.DeepEqual(s.ClientAssertionAlgorithms(), []string{"PS256", "ES256", "EdDSA", "Ed25519"}) {
		t.Errorf("profile defaults: RequirePAR %v RequirePKCE %v StrictAudience %v CodeTTL %v proofs %v assertions %v",
			c.RequirePAR, c.RequirePKCE, c.ClientAssertion.StrictAudience, c.CodeTTL, s.Verifier().Algorithms(), s.ClientAssertionAlgorithms())
	}
}

// The FAPI 2.0 checklist at the server, each rule a case named after it.
func TestFAPI2Profile(t *testing.T) {
	es := key(t, "ec256", "ES256", "es")
	rs := key(t, "rsa2048", "RS256", "rs")
	h := assertionHarness(t, func(c *Config) { c.Profile = ProfileFAPI2 }, "", es, rs)
	c, _ := h.store.GetClient(context.Background(), pkjID)
	c.GrantTypes = append(c.GrantTypes, GrantAuthorizationCode)
	c.RedirectURIs = []string{redirectURI}
	if err := h.store.SaveClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	tokenURL := h.ts.URL + DefaultPaths.Token
	cc := func(assertion string) response {
		form := assertionForm(assertion)
		form.Set("grant_type", GrantClientCredentials)
		return h.postForm(DefaultPaths.Token, form, map[string]string{"DPoP": proofBy(t, h.signer, "POST", tokenURL, dpop.ProofOptions{})})
	}
	now := time.Now()

	t.Run("Confidential only; authenticated by private_key_jwt", func(t *testing.T) {
		wantToken(t, cc(assertionFor(t, es, pkjID, h.ts.URL, now, nil)), TokenTypeDPoP)
	})
	t.Run("a client secret is refused (invalid_client)", func(t *testing.T) {
		wantError(t, h.tokenRequest(ccForm()), http.StatusUnauthorized, dpop.CodeInvalidClient)
	})
	t.Run("a public client is refused (invalid_client)", func(t *testing.T) {
		code := h.saveCode(pubID, nil)
		wantError(t, h.publicTokenRequest(codeForm(code), h.signer), http.StatusUnauthorized, dpop.CodeInvalidClient)
	})
	t.Run("algorithms PS256/ES256/EdDSA only (RS256 → invalid_client)", func(t *testing.T) {
		wantError(t, cc(assertionFor(t, rs, pkjID, h.ts.URL, now, nil)), http.StatusUnauthorized, dpop.CodeInvalidClient)
	})
	t.Run("aud must be the issuer identifier, as a string: [issuer] refused", func(t *testing.T) {
		a := assertionFor(t, es, pkjID, h.ts.URL, now, func(_, c map[string]any) { c["aud"] = []string{h.ts.URL} })
		wantError(t, cc(a), http.StatusUnauthorized, dpop.CodeInvalidClient)
	})
	t.Run("aud must be the issuer identifier, as a string: the token endpoint URL refused", func(t *testing.T) {
		a := assertionFor(t, es, pkjID, h.ts.URL, now, func(_, c map[string]any) { c["aud"] = tokenURL })
		wantError(t, cc(a), http.StatusUnauthorized, dpop.CodeInvalidClient)
	})
	t.Run("metadata says all of this", func(t *testing.T) {
		r := h.do(mustRequest(t, http.MethodGet, h.ts.URL+DefaultPaths.Metadata))
		fapi := []any{"PS256", "ES256", "EdDSA", "Ed25519"}
		for member, want := range map[string]any{
			"require_pushed_authorization_requests":            true,
			"pushed_authorization_request_endpoint":            h.ts.URL + DefaultPaths.PushedAuthorization,
			"token_endpoint_auth_methods_supported":            []any{AuthPrivateKeyJWT},
			"token_endpoint_auth_signing_alg_values_supported": fapi,
			"dpop_signing_alg_values_supported":                fapi,
			"code_challenge_methods_supported":                 []any{"S256"},
			"response_types_supported":                         []any{"code"},
			"authorization_response_iss_parameter_supported":   true,
		} {
			if !reflect.DeepEqual(r.body[member], want) {
				t.Errorf("%s = %v, want %v", member, r.body[member], want)
			}
		}
	})
	t.Run("A request that did not go through PAR is refused", func(t *testing.T) {
		r := h.authzRequest(http.MethodGet, authzParams("response_type", "code", "client_id", pkjID, "redirect_uri", redirectURI,
			"code_challenge", S256Challenge(testVerifier), "code_challenge_method", "S256", "state", "s"), "", "", authzAlice)
		if loc := r.header.Get("Location"); r.status != http.StatusSeeOther || !strings.Contains(loc, "error=invalid_request") {
			t.Fatalf("got %d %s", r.status, loc)
		}
	})
	t.Run("PAR, then 303 redirects with iss and the code bound to the PAR proof's key", func(t *testing.T) {
		par := h.ts.URL + DefaultPaths.PushedAuthorization
		form := assertionForm(assertionFor(t, es, pkjID, h.ts.URL, time.Now(), nil))
		for k, v := range authzParams("response_type", "code", "client_id", pkjID, "redirect_uri", redirectURI, "scope", "read",
			"code_challenge", S256Challenge(testVerifier), "code_challenge_method", "S256", "state", "s2") {
			form[k] = v
		}
		r := h.postForm(DefaultPaths.PushedAuthorization, form, map[string]string{"DPoP": proofBy(t, h.signer, "POST", par, dpop.ProofOptions{})})
		if r.status != http.StatusCreated {
			t.Fatalf("PAR: %d %s", r.status, r.raw)
		}
		r = h.authzRequest(http.MethodGet, authzParams("client_id", pkjID, "request_uri", r.str("request_uri")), "", "", authzAlice)
		loc, err := url.Parse(r.header.Get("Location"))
		if r.status != http.StatusSeeOther || err != nil || loc.Query().Get("iss") != h.ts.URL || loc.Query().Get("code") == "" {
			t.Fatalf("authorization: %d %v", r.status, r.header.Get("Location"))
		}
		tok := assertionForm(assertionFor(t, es, pkjID, h.ts.URL, time.Now(), nil))
		for k, v := range codeForm(loc.Query().Get("code")) {
			tok[k] = v
		}
		other := newSigner(t)
		wrong := h.postForm(DefaultPaths.Token, tok, map[string]string{"DPoP": proofBy(t, other, "POST", tokenURL, dpop.ProofOptions{})})
		wantError(t, wrong, http.StatusBadRequest, dpop.CodeInvalidGrant)
		tok.Set("client_assertion", assertionFor(t, es, pkjID, h.ts.URL, time.Now(), nil))
		wantToken(t, h.postForm(DefaultPaths.Token, tok, map[string]string{"DPoP": proofBy(t, h.signer, "POST", tokenURL, dpop.ProofOptions{})}), TokenTypeDPoP)
	})
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
