package handlers

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// The resources of these tests: conf registers rvAudience and the issuer
// (the harness's URL); resOther is registered for nobody.
const (
	resOther    = "https://billing.example"
	plainID     = "plain" // confidential, client credentials, no Resources
	plainSecret = "plain-secret-0123456789abcdef"
)

// resHarness is the harness with the plain client registered too.
func resHarness(t *testing.T, edit func(*Config)) *harness {
	t.Helper()
	h := newHarness(t, edit)
	if err := h.store.SaveClient(ctx, &store.Client{ID: plainID, SecretHash: store.HashSecret(plainSecret),
		GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"read"}, DPoPBound: true}); err != nil {
		t.Fatal(err)
	}
	return h
}

// withResources returns form with a resource parameter per value.
func withResources(form url.Values, resources ...string) url.Values {
	for _, r := range resources {
		form.Add("resource", r)
	}
	return form
}

// wantAudience asserts the stored audience of an opaque access token.
func (h *harness) wantAudience(r response, want []string) {
	h.t.Helper()
	rec, err := h.accessRecord(r.str("access_token"))
	if err != nil {
		h.t.Fatal(err)
	}
	if !reflect.DeepEqual(rec.Audience, want) {
		h.t.Errorf("audience %q, want %q", rec.Audience, want)
	}
}

// RFC 8707 §2 at the token endpoint, client credentials: the resource
// parameter may repeat, each must be an absolute URI without a fragment
// registered for the client, and without one the token is for all of the
// client's resources (or Config.Audience for a client that registers none).
func TestResourceClientCredentials(t *testing.T) {
	tooMany := make([]string, MaxResources+1)
	for i := range tooMany {
		tooMany[i] = rvAudience
	}
	const (
		malformed  = "a resource is not an absolute URI without a fragment"
		notAllowed = "the client may not have a token for a requested resource"
	)
	tests := []struct {
		name      string
		basic     string
		resources []string
		want      []string // nil: invalid_target
		refusal   string   // its error_description
	}{
		{"no resource: every registered one", "", nil, []string{rvAudience, "ISSUER"}, ""},
		{"one registered resource", "", []string{rvAudience}, []string{rvAudience}, ""},
		{"two, repeated parameter", "", []string{"ISSUER", rvAudience}, []string{"ISSUER", rvAudience}, ""},
		{"the same twice", "", []string{rvAudience, rvAudience}, []string{rvAudience}, ""},
		{"not registered for the client", "", []string{resOther}, nil, notAllowed},
		{"one registered, one not", "", []string{rvAudience, resOther}, nil, notAllowed},
		{"relative", "", []string{"/api"}, nil, malformed},
		{"with a fragment", "", []string{rvAudience + "#x"}, nil, malformed},
		{"with an empty fragment", "", []string{rvAudience + "#"}, nil, malformed},
		{"empty value", "", []string{""}, nil, malformed},
		{"space inside", "", []string{"https://api .example"}, nil, malformed},
		{"too long", "", []string{"https://api.example/" + strings.Repeat("a", store.MaxResourceLen)}, nil, malformed},
		{"more than MaxResources", "", tooMany, nil, "too many resource parameters"},
		{"client without Resources, no resource: Config.Audience", plainID + ":" + plainSecret, nil, []string{"ISSUER"}, ""},
		{"client without Resources cannot name one", plainID + ":" + plainSecret, []string{"ISSUER"}, nil, notAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := resHarness(t, nil)
			fix := func(v []string) []string {
				out := make([]string, len(v))
				for i, s := range v {
					out[i] = strings.ReplaceAll(s, "ISSUER", h.ts.URL)
				}
				return out
			}
			basic := cmp.Or(tc.basic, confID+":"+confSecret)
			proof := h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{})
			r := h.postForm(DefaultPaths.Token, withResources(ccForm(), fix(tc.resources)...), map[string]string{"basic": basic, "DPoP": proof})
			if tc.want == nil {
				wantError(t, r, http.StatusBadRequest, dpop.CodeInvalidTarget)
				if got := r.str("error_description"); got != tc.refusal {
					t.Errorf("error_description %q, want %q", got, tc.refusal)
				}
				// Refused before the proof took a place in the replay
				// cache: the same proof is still good.
				r = h.postForm(DefaultPaths.Token, ccForm(), map[string]string{"basic": basic, "DPoP": proof})
				wantToken(t, r, TokenTypeDPoP)
				return
			}
			h.wantAudience(wantToken(t, r, TokenTypeDPoP), fix(tc.want))
		})
	}
}

// RFC 8707 §2.1–2.2 through the code flow: the authorization request fixes
// the grant's resources; the code exchange and every refresh may narrow the
// access token's audience to some of them, never widen it; the refresh
// token keeps the whole grant.
func TestResourceCodeAndRefresh(t *testing.T) {
	h := resHarness(t, nil)
	both := []string{rvAudience, h.ts.URL}

	// Authorization request: an unregistered resource is sent back as
	// invalid_target, and no code is issued.
	base := authzParams("response_type", "code", "client_id", confID, "redirect_uri", redirectURI, "state", "s1")
	r := h.authzRequest(http.MethodGet, withResources(cloneValues(base), resOther), "", "", authzAlice)
	wantRedirectError(t, r, dpop.CodeInvalidTarget)
	r = h.authzRequest(http.MethodGet, withResources(cloneValues(base), "not a uri"), "", "", authzAlice)
	wantRedirectError(t, r, dpop.CodeInvalidTarget)

	// Both resources granted (by POST: the Authenticator finds them in
	// r.Form too), then the code redeemed for one of them.
	var seen *AuthorizationRequest
	var form []string
	h.srv.cfg.Authenticate = func(w http.ResponseWriter, r *http.Request, req *AuthorizationRequest) (string, bool, error) {
		seen, form = req, r.Form["resource"]
		return "alice", false, nil
	}
	r = h.authzRequest(http.MethodPost, withResources(cloneValues(base), rvAudience, h.ts.URL), "", "", nil)
	code := redirectParam(t, r, "code")
	if !reflect.DeepEqual(seen.Resources, both) || !reflect.DeepEqual(form, both) {
		t.Errorf("AuthorizationRequest.Resources %q, r.Form resource %q, want %q", seen.Resources, form, both)
	}
	tokenForm := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
	// Wider than the grant: refused, and the code stays redeemable.
	wantError(t, h.tokenRequest(withResources(cloneValues(tokenForm), resOther)), http.StatusBadRequest, dpop.CodeInvalidTarget)
	tok := wantToken(t, h.tokenRequest(withResources(cloneValues(tokenForm), h.ts.URL)), TokenTypeDPoP)
	h.wantAudience(tok, []string{h.ts.URL})
	rt := tok.str("refresh_token")
	rec, err := h.store.GetRefreshToken(ctx, store.HashToken(rt))
	if err != nil || !reflect.DeepEqual(rec.Audience, both) {
		t.Fatalf("refresh token audience %v (%v), want the grant's %q", rec, err, both)
	}

	refresh := func(resources ...string) response {
		return h.tokenRequest(withResources(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, resources...))
	}
	h.wantAudience(wantToken(t, refresh(rvAudience), TokenTypeDPoP), []string{rvAudience})
	h.wantAudience(wantToken(t, refresh(), TokenTypeDPoP), both)
	wantError(t, refresh(resOther), http.StatusBadRequest, dpop.CodeInvalidTarget)
	wantError(t, refresh(rvAudience, resOther), http.StatusBadRequest, dpop.CodeInvalidTarget)

	// A grant for one resource cannot be refreshed into the other.
	narrow := h.saveCode(confID, func(c *store.AuthorizationCode) {
		c.Resources, c.CodeChallenge, c.CodeChallengeMethod = []string{rvAudience}, "", ""
	})
	tokenForm.Set("code", narrow)
	wantError(t, h.tokenRequest(withResources(cloneValues(tokenForm), h.ts.URL)), http.StatusBadRequest, dpop.CodeInvalidTarget)
	tok = wantToken(t, h.tokenRequest(cloneValues(tokenForm)), TokenTypeDPoP)
	h.wantAudience(tok, []string{rvAudience})
	rt = tok.str("refresh_token")
	wantError(t, refresh(h.ts.URL), http.StatusBadRequest, dpop.CodeInvalidTarget)

	// A resource withdrawn from the client's registration since the grant
	// is not in its new tokens.
	c, _ := h.store.GetClient(ctx, confID)
	c.Resources = []string{h.ts.URL}
	if err := h.store.SaveClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	wantError(t, refresh(), http.StatusBadRequest, dpop.CodeInvalidTarget)
}

// A record written before the kit recorded audiences (no Resources on the
// code) grants what a request without resource parameters gets now.
func TestResourceRecordWithoutAudience(t *testing.T) {
	h := resHarness(t, nil)
	code := h.saveCode(confID, func(c *store.AuthorizationCode) { c.CodeChallenge, c.CodeChallengeMethod = "", "" })
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
	h.wantAudience(wantToken(t, h.tokenRequest(form), TokenTypeDPoP), []string{rvAudience, h.ts.URL})
}

// Config.ResourcePolicy decides new grants; it cannot grant what the client
// did not register, and its failure is the server's.
func TestResourcePolicy(t *testing.T) {
	tests := []struct {
		name   string
		policy ResourcePolicy
		status int
		code   dpop.ErrorCode
		want   []string
	}{
		{"default resources chosen by the host", func(_ context.Context, c *store.Client, req []string) ([]string, error) {
			if req == nil {
				return []string{rvAudience}, nil
			}
			return req, nil
		}, http.StatusOK, "", []string{rvAudience}},
		{"refused with ErrTarget", func(context.Context, *store.Client, []string) ([]string, error) {
			return nil, ErrTarget
		}, http.StatusBadRequest, dpop.CodeInvalidTarget, nil},
		{"failing", func(context.Context, *store.Client, []string) ([]string, error) {
			return nil, errors.New("policy down")
		}, http.StatusInternalServerError, dpop.CodeServerError, nil},
		{"granting an unregistered resource", func(context.Context, *store.Client, []string) ([]string, error) {
			return []string{resOther}, nil
		}, http.StatusInternalServerError, dpop.CodeServerError, nil},
		{"granting nothing", func(context.Context, *store.Client, []string) ([]string, error) {
			return []string{}, nil
		}, http.StatusInternalServerError, dpop.CodeServerError, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := resHarness(t, func(c *Config) { c.ResourcePolicy = tc.policy })
			r := h.tokenRequest(ccForm())
			if tc.want != nil {
				h.wantAudience(wantToken(t, r, TokenTypeDPoP), tc.want)
				return
			}
			wantError(t, r, tc.status, tc.code)
		})
	}
}

// Config.Audience must hold valid resource indicators.
func TestResourceConfigAudience(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if _, err := New(Config{Issuer: "https://as.example", Store: m, Audience: []string{"https://api.example", "urn:example:rs"}}); err != nil {
		t.Fatalf("valid Audience refused: %v", err)
	}
	for _, bad := range [][]string{{"relative"}, {"https://api.example#f"}, {""}, {"https://api.example", "https://api .example"}} {
		if _, err := New(Config{Issuer: "https://as.example", Store: m, Audience: bad}); err == nil || !strings.Contains(err.Error(), "Config.Audience") {
			t.Errorf("Audience %q: %v, want a refusal naming Config.Audience", bad, err)
		}
	}
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// wantRedirectError asserts an error redirect with the given code.
func wantRedirectError(t *testing.T, r response, code dpop.ErrorCode) {
	t.Helper()
	if got := redirectParam(t, r, "error"); got != string(code) {
		t.Fatalf("error %q, want %q", got, code)
	}
}

// redirectParam is a parameter of the redirect r answers with.
func redirectParam(t *testing.T, r response, name string) string {
	t.Helper()
	if r.status != http.StatusFound && r.status != http.StatusSeeOther {
		t.Fatalf("got %d %s, want a redirect", r.status, r.raw)
	}
	u, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get(name)
}
