package handlers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

const testVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk" // RFC 7636 Appendix B

// saveCode stores an authorization code as the authorize endpoint would and
// returns its value; edit adjusts the record.
func (h *harness) saveCode(client string, edit func(c *store.AuthorizationCode)) string {
	h.t.Helper()
	code := randomToken()
	rec := &store.AuthorizationCode{
		GrantID: randomToken(), ClientID: client, RedirectURI: redirectURI, Scope: "read", Subject: "alice",
		CodeChallenge: S256Challenge(testVerifier), CodeChallengeMethod: PKCEMethodS256,
		ExpiresAt: time.Now().Add(time.Minute),
	}
	if edit != nil {
		edit(rec)
	}
	if err := h.store.SaveCode(ctx, store.HashToken(code), rec); err != nil {
		h.t.Fatal(err)
	}
	return code
}

func codeForm(code string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {testVerifier}}
}

// publicTokenRequest is a token request of the public client (auth none)
// with a proof by signer (nil: no proof).
func (h *harness) publicTokenRequest(form url.Values, signer *dpop.Signer) response {
	h.t.Helper()
	form.Set("client_id", pubID)
	headers := map[string]string{}
	if signer != nil {
		headers["DPoP"] = proofBy(h.t, signer, "POST", h.ts.URL+DefaultPaths.Token, dpop.ProofOptions{})
	}
	return h.postForm(DefaultPaths.Token, form, headers)
}

// Checklist 2: the authorization code grant with PKCE, exact redirect_uri
// and the dpop_jkt binding.
func TestTokenAuthorizationCode(t *testing.T) {
	h := newHarness(t, nil)
	other := newSigner(t)
	edit := func(f func(url.Values)) url.Values { v := codeForm(""); f(v); return v }
	_ = edit
	for _, tc := range []struct {
		name   string
		client string
		code   func(c *store.AuthorizationCode)
		form   func(f url.Values)
		signer *dpop.Signer
		status int
		err    dpop.ErrorCode
	}{
		{name: "confidential with PKCE", client: confID},
		{name: "confidential without PKCE", client: confID, code: func(c *store.AuthorizationCode) { c.CodeChallenge, c.CodeChallengeMethod = "", "" }, form: func(f url.Values) { f.Del("code_verifier") }},
		{name: "public with PKCE", client: pubID},
		{name: "public with dpop_jkt", client: pubID, code: func(c *store.AuthorizationCode) { c.DPoPJKT = h.signer.JKT() }},
		{name: "redirect_uri omitted in both", client: pubID, code: func(c *store.AuthorizationCode) { c.RedirectURI = "" }, form: func(f url.Values) { f.Del("redirect_uri") }},
		{name: "wrong verifier", client: pubID, form: func(f url.Values) { f.Set("code_verifier", testVerifier[:42]+"x") }, status: 400, err: dpop.CodeInvalidGrant},
		{name: "missing verifier", client: pubID, form: func(f url.Values) { f.Del("code_verifier") }, status: 400, err: dpop.CodeInvalidGrant},
		{name: "short verifier", client: pubID, code: func(c *store.AuthorizationCode) { c.CodeChallenge = S256Challenge("short") }, form: func(f url.Values) { f.Set("code_verifier", "short") }, status: 400, err: dpop.CodeInvalidGrant},
		{name: "verifier without challenge (downgrade)", client: confID, code: func(c *store.AuthorizationCode) { c.CodeChallenge, c.CodeChallengeMethod = "", "" }, status: 400, err: dpop.CodeInvalidGrant},
		{name: "public client without PKCE", client: pubID, code: func(c *store.AuthorizationCode) { c.CodeChallenge, c.CodeChallengeMethod = "", "" }, form: func(f url.Values) { f.Del("code_verifier") }, status: 400, err: dpop.CodeInvalidGrant},
		{name: "plain method stored", client: pubID, code: func(c *store.AuthorizationCode) { c.CodeChallenge, c.CodeChallengeMethod = testVerifier, "plain" }, status: 400, err: dpop.CodeInvalidGrant},
		{name: "other redirect_uri", client: pubID, form: func(f url.Values) { f.Set("redirect_uri", "http://127.0.0.1:8765/callback") }, status: 400, err: dpop.CodeInvalidGrant},
		{name: "redirect_uri missing", client: pubID, form: func(f url.Values) { f.Del("redirect_uri") }, status: 400, err: dpop.CodeInvalidGrant},
		{name: "redirect_uri with trailing slash", client: pubID, form: func(f url.Values) { f.Set("redirect_uri", redirectURI+"/") }, status: 400, err: dpop.CodeInvalidGrant},
		{name: "code of another client", client: pubID, code: func(c *store.AuthorizationCode) { c.ClientID = confID }, status: 400, err: dpop.CodeInvalidGrant},
		{name: "expired code", client: pubID, code: func(c *store.AuthorizationCode) { c.ExpiresAt = time.Now().Add(-time.Second) }, status: 400, err: dpop.CodeInvalidGrant},
		{name: "dpop_jkt, other key", client: pubID, code: func(c *store.AuthorizationCode) { c.DPoPJKT = h.signer.JKT() }, signer: other, status: 400, err: dpop.CodeInvalidGrant},
		{name: "missing code", client: pubID, form: func(f url.Values) { f.Del("code") }, status: 400, err: dpop.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := h.saveCode(tc.client, tc.code)
			f := codeForm(code)
			if tc.form != nil {
				tc.form(f)
			}
			signer := h.signer
			if tc.signer != nil {
				signer = tc.signer
			}
			var r response
			if tc.client == pubID {
				r = h.publicTokenRequest(f, signer)
			} else {
				r = h.postForm(DefaultPaths.Token, f, map[string]string{"basic": confID + ":" + confSecret, "DPoP": proofBy(t, signer, "POST", h.ts.URL+DefaultPaths.Token, dpop.ProofOptions{})})
			}
			if tc.status != 0 {
				wantError(t, r, tc.status, tc.err)
				return
			}
			wantToken(t, r, TokenTypeDPoP)
			rec, err := h.accessRecord(r.str("access_token"))
			if err != nil || rec.Subject != "alice" || rec.JKT != signer.JKT() || rec.Scope != "read" {
				t.Fatalf("access token %+v, %v", rec, err)
			}
			if r.str("refresh_token") == "" {
				t.Fatal("no refresh token for a client with the refresh_token grant")
			}
		})
	}
	t.Run("dpop_jkt without a proof", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.AllowBearer = true })
		// pub is DPoP-bound, so this is refused before the code is looked at;
		// a client that is not bound gets the same for a bound code.
		code := h.saveCode(pubID, func(c *store.AuthorizationCode) { c.DPoPJKT = h.signer.JKT() })
		wantError(t, h.publicTokenRequest(codeForm(code), nil), 400, dpop.CodeInvalidProof)
		nb := &store.Client{ID: "nb", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{redirectURI}, Scopes: []string{"read"}}
		if err := h.store.SaveClient(ctx, nb); err != nil {
			t.Fatal(err)
		}
		code = h.saveCode("nb", func(c *store.AuthorizationCode) { c.DPoPJKT = h.signer.JKT() })
		f := codeForm(code)
		f.Set("client_id", "nb")
		wantError(t, h.postForm(DefaultPaths.Token, f, nil), 400, dpop.CodeInvalidProof)
	})
}

// Checklist 2: a code is single-use; the second redemption is refused and
// revokes what the first issued (RFC 6749 §4.1.2).
func TestTokenCodeReplay(t *testing.T) {
	h := newHarness(t, nil)
	code := h.saveCode(pubID, nil)
	first := wantToken(t, h.publicTokenRequest(codeForm(code), h.signer), TokenTypeDPoP)
	wantError(t, h.publicTokenRequest(codeForm(code), h.signer), 400, dpop.CodeInvalidGrant)
	if _, err := h.accessRecord(first.str("access_token")); err == nil {
		t.Fatal("the access token of a replayed code still works")
	}
	r := h.publicTokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.str("refresh_token")}}, h.signer)
	wantError(t, r, 400, dpop.CodeInvalidGrant)
}

// Checklist 2: of 32 concurrent redemptions of one code exactly one gets a
// token.
func TestTokenConcurrentCodeRedemption(t *testing.T) {
	h := newHarness(t, nil)
	code := h.saveCode(pubID, nil)
	var wins, refusals atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 32 {
		s := newSigner(t)
		wg.Go(func() {
			<-start
			r := h.publicTokenRequest(codeForm(code), s)
			switch {
			case r.status == http.StatusOK:
				wins.Add(1)
			case r.status == 400 && r.str("error") == string(dpop.CodeInvalidGrant):
				refusals.Add(1)
			default:
				t.Errorf("%d %s", r.status, r.raw)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || refusals.Load() != 31 {
		t.Fatalf("%d tokens and %d refusals, want 1 and 31", wins.Load(), refusals.Load())
	}
}

// Checklist 2: refresh tokens of public clients are bound to the proof key
// and rotate; those of confidential clients are not bound, and each new
// access token is bound to the key of the refresh request's proof.
func TestTokenRefresh(t *testing.T) {
	refreshForm := func(rt string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	}
	t.Run("public: bound and rotated", func(t *testing.T) {
		h := newHarness(t, nil)
		first := wantToken(t, h.publicTokenRequest(codeForm(h.saveCode(pubID, nil)), h.signer), TokenTypeDPoP)
		rt := first.str("refresh_token")
		if rec, err := h.store.GetRefreshToken(ctx, store.HashToken(rt)); err != nil || rec.JKT != h.signer.JKT() {
			t.Fatalf("refresh token %+v, %v", rec, err)
		}
		wantError(t, h.publicTokenRequest(refreshForm(rt), newSigner(t)), 400, dpop.CodeInvalidGrant)
		wantError(t, h.publicTokenRequest(refreshForm(rt), nil), 400, dpop.CodeInvalidProof)
		second := wantToken(t, h.publicTokenRequest(refreshForm(rt), h.signer), TokenTypeDPoP)
		next := second.str("refresh_token")
		if next == "" || next == rt {
			t.Fatalf("refresh token not rotated: %q", next)
		}
		if rec, err := h.accessRecord(second.str("access_token")); err != nil || rec.JKT != h.signer.JKT() || rec.Subject != "alice" {
			t.Fatalf("access token %+v, %v", rec, err)
		}
		// The rotated token used again: refused, and the grant is revoked.
		wantError(t, h.publicTokenRequest(refreshForm(rt), h.signer), 400, dpop.CodeInvalidGrant)
		wantError(t, h.publicTokenRequest(refreshForm(next), h.signer), 400, dpop.CodeInvalidGrant)
		if _, err := h.accessRecord(second.str("access_token")); err == nil {
			t.Fatal("access token of a revoked grant still works")
		}
	})
	t.Run("confidential: not bound, new key binds the new access token", func(t *testing.T) {
		h := newHarness(t, nil)
		first := wantToken(t, h.postForm(DefaultPaths.Token, codeForm(h.saveCode(confID, nil)),
			map[string]string{"basic": confID + ":" + confSecret, "DPoP": h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{})}), TokenTypeDPoP)
		rt := first.str("refresh_token")
		if rec, err := h.store.GetRefreshToken(ctx, store.HashToken(rt)); err != nil || rec.JKT != "" {
			t.Fatalf("confidential refresh token %+v, %v", rec, err)
		}
		other := newSigner(t)
		r := wantToken(t, h.postForm(DefaultPaths.Token, refreshForm(rt),
			map[string]string{"basic": confID + ":" + confSecret, "DPoP": proofBy(t, other, "POST", h.ts.URL+DefaultPaths.Token, dpop.ProofOptions{})}), TokenTypeDPoP)
		if rec, err := h.accessRecord(r.str("access_token")); err != nil || rec.JKT != other.JKT() {
			t.Fatalf("access token %+v, %v", rec, err)
		}
		if r.str("refresh_token") != "" {
			t.Error("a confidential client's refresh token was rotated")
		}
		// Scope may be narrowed, never widened.
		f := refreshForm(rt)
		f.Set("scope", "read write")
		wantError(t, h.postForm(DefaultPaths.Token, f, map[string]string{"basic": confID + ":" + confSecret, "DPoP": h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{})}), 400, dpop.CodeInvalidScope)
		// Another client cannot use it.
		wantError(t, h.publicTokenRequest(refreshForm(rt), h.signer), 400, dpop.CodeInvalidGrant)
	})
	t.Run("unknown refresh token", func(t *testing.T) {
		h := newHarness(t, nil)
		wantError(t, h.publicTokenRequest(refreshForm("nope"), h.signer), 400, dpop.CodeInvalidGrant)
	})
}

// flakyAccess is a store whose next SaveAccessToken fails.
type flakyAccess struct {
	*store.Memory
	fail atomic.Bool
}

func (f *flakyAccess) SaveAccessToken(ctx context.Context, h store.TokenHash, t *store.AccessToken) error {
	if f.fail.Swap(false) {
		return errDown
	}
	return f.Memory.SaveAccessToken(ctx, h, t)
}

// Regression (second review): a store failure while minting the access token
// of a public client's refresh must not rotate the refresh token, or the
// client's retry would look like a replay and revoke the grant.
func TestTokenRefreshStoreFailureKeepsTheGrant(t *testing.T) {
	h := newHarness(t, nil)
	flaky := &flakyAccess{Memory: h.store}
	srv, err := New(Config{Issuer: h.ts.URL, Store: flaky})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Mount(mux)
	first := wantToken(t, h.publicTokenRequest(codeForm(h.saveCode(pubID, nil)), h.signer), TokenTypeDPoP)
	refresh := func() *httptest.ResponseRecorder {
		f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.str("refresh_token")}, "client_id": {pubID}}
		req := httptest.NewRequest("POST", DefaultPaths.Token, strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("DPoP", h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{}))
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}
	flaky.fail.Store(true)
	if r := refresh(); r.Code != http.StatusServiceUnavailable {
		t.Fatalf("with the store failing: %d %s", r.Code, r.Body)
	}
	if r := refresh(); r.Code != http.StatusOK {
		t.Fatalf("the retry after a store failure: %d %s", r.Code, r.Body)
	}
}
