package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// Token endpoint tests: one per item of section 2 of the DPoP checklist,
// plus the error table of RFC 6749 §5.2.

var ctx = context.Background()

func ccForm() url.Values { return url.Values{"grant_type": {"client_credentials"}} }

// tokenRequest posts to the token endpoint with a fresh proof by the
// harness key and Basic authentication of the confidential client.
func (h *harness) tokenRequest(form url.Values) response {
	h.t.Helper()
	return h.postForm(DefaultPaths.Token, form, map[string]string{"basic": confID + ":" + confSecret, "DPoP": h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{})})
}

// wantToken asserts a successful token response and returns it.
func wantToken(t *testing.T, r response, tokenType string) response {
	t.Helper()
	if r.status != http.StatusOK || r.str("access_token") == "" || r.str("token_type") != tokenType {
		t.Fatalf("got %d %s, want a %s token", r.status, r.raw, tokenType)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", r.header)
	}
	if exp, _ := r.body["expires_in"].(float64); exp <= 0 {
		t.Errorf("expires_in %v", r.body["expires_in"])
	}
	return r
}

// accessRecord returns the stored record of an opaque access token.
func (h *harness) accessRecord(tok string) (*store.AccessToken, error) {
	return h.store.GetAccessToken(ctx, store.HashToken(tok))
}

// Checklist 2: success is token_type DPoP, expires_in, no-store, JSON; the
// token is bound to the proof's key.
func TestTokenSuccess(t *testing.T) {
	h := newHarness(t, nil)
	r := wantToken(t, h.tokenRequest(ccForm()), TokenTypeDPoP)
	if r.str("scope") != "read write" || r.body["expires_in"] != float64(3600) || r.body["refresh_token"] != nil {
		t.Fatalf("response %s", r.raw)
	}
	rec, err := h.accessRecord(r.str("access_token"))
	if err != nil || rec.JKT != h.signer.JKT() || rec.ClientID != confID || rec.Subject != confID {
		t.Fatalf("stored %+v, %v", rec, err)
	}
	if len(r.str("access_token")) < 22 {
		t.Fatal("access token shorter than 128 bits")
	}
}

// The exchange of WSO2 Identity Server's DPoP guide, run with curl as
// written there.
func TestTokenWSO2CurlExchange(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is needed for this test (apt-get install curl)")
	}
	h := newHarness(t, nil)
	proof := h.proof("POST", "/oauth2/token", dpop.ProofOptions{})
	out, err := exec.Command(curl, "-s", "-i", "-X", "POST", h.ts.URL+"/oauth2/token",
		"-u", confID+":"+confSecret, "-H", "DPoP: "+proof, "-d", "grant_type=client_credentials").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	head, body, _ := strings.Cut(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n")
	if !strings.HasPrefix(head, "HTTP/1.1 200") || !strings.Contains(strings.ToLower(head), "cache-control: no-store") ||
		!strings.Contains(body, `"token_type":"DPoP"`) || !strings.Contains(body, `"expires_in":3600`) || !strings.Contains(body, `"access_token":"`) {
		t.Fatalf("curl exchange:\n%s", out)
	}
}

// Checklist 2: an invalid proof is 400 invalid_dpop_proof; a missing nonce
// is 400 use_dpop_nonce with a DPoP-Nonce, and a retry with it succeeds.
func TestTokenProofErrors(t *testing.T) {
	h := newHarness(t, nil)
	basic := confID + ":" + confSecret
	for name, proof := range map[string]string{
		"wrong htu":      proofBy(t, h.signer, "POST", h.ts.URL+"/other", dpop.ProofOptions{}),
		"wrong htm":      proofBy(t, h.signer, "GET", h.ts.URL+DefaultPaths.Token, dpop.ProofOptions{}),
		"garbage":        "not.a.jwt",
		"issuer as htu ": proofBy(t, h.signer, "POST", h.ts.URL, dpop.ProofOptions{}),
	} {
		t.Run(name, func(t *testing.T) {
			wantError(t, h.postForm(DefaultPaths.Token, ccForm(), map[string]string{"basic": basic, "DPoP": proof}), 400, dpop.CodeInvalidProof)
		})
	}
	t.Run("replay", func(t *testing.T) {
		p := h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{})
		wantToken(t, h.postForm(DefaultPaths.Token, ccForm(), map[string]string{"basic": basic, "DPoP": p}), TokenTypeDPoP)
		wantError(t, h.postForm(DefaultPaths.Token, ccForm(), map[string]string{"basic": basic, "DPoP": p}), 400, dpop.CodeInvalidProof)
	})
	t.Run("nonce", func(t *testing.T) {
		nonces, err := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: []byte(strings.Repeat("s", 32))})
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, func(c *Config) { c.DPoP.Nonces = nonces })
		r := h.tokenRequest(ccForm())
		wantError(t, r, 400, dpop.CodeUseNonce)
		nonce := r.header.Get("DPoP-Nonce")
		if nonce == "" || len(r.header.Values("DPoP-Nonce")) != 1 {
			t.Fatalf("DPoP-Nonce %q", r.header.Values("DPoP-Nonce"))
		}
		r = h.postForm(DefaultPaths.Token, ccForm(), map[string]string{"basic": basic, "DPoP": h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{Nonce: nonce})})
		wantToken(t, r, TokenTypeDPoP)
		if r.header.Get("DPoP-Nonce") == "" {
			t.Error("no fresh nonce on success")
		}
		// The kit's own Transport recovers from the challenge by itself.
		client := &http.Client{Transport: dpop.NewTransport(h.signer, nil)}
		req, _ := http.NewRequest("POST", h.ts.URL+DefaultPaths.Token, strings.NewReader(ccForm().Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(confID, confSecret)
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("transport: %v %v", resp, err)
		}
		resp.Body.Close()
	})
}

// Checklist 2: a DPoP-bound client is refused without a proof; other
// clients get Bearer tokens only when the host allows it.
func TestTokenBearerRules(t *testing.T) {
	for _, tc := range []struct {
		name        string
		allow       bool
		id, secret  string
		wantBearer  bool
		wantRefusal bool
	}{
		{"bound client, no proof", true, confID, confSecret, false, true},
		{"unbound client, Bearer allowed", true, bearerID, bearerSecret, true, false},
		{"unbound client, Bearer not allowed (default)", false, bearerID, bearerSecret, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.AllowBearer = tc.allow })
			r := h.postForm(DefaultPaths.Token, ccForm(), map[string]string{"basic": tc.id + ":" + tc.secret})
			if tc.wantRefusal {
				wantError(t, r, 400, dpop.CodeInvalidProof)
				return
			}
			wantToken(t, r, TokenTypeBearer)
			if rec, err := h.accessRecord(r.str("access_token")); err != nil || rec.JKT != "" {
				t.Fatalf("Bearer token stored as %+v, %v", rec, err)
			}
		})
	}
	t.Run("unbound client with a proof gets a DPoP token", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.AllowBearer = true })
		r := h.postForm(DefaultPaths.Token, ccForm(), map[string]string{"basic": bearerID + ":" + bearerSecret, "DPoP": h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{})})
		wantToken(t, r, TokenTypeDPoP)
	})
}

// Checklist 2: client authentication methods and their failures.
func TestTokenClientAuthentication(t *testing.T) {
	h := newHarness(t, nil)
	type hdr = map[string]string
	for _, tc := range []struct {
		name        string
		form        url.Values
		headers     hdr
		status      int
		code        dpop.ErrorCode
		basicHeader bool
	}{
		{"basic", ccForm(), hdr{"basic": confID + ":" + confSecret}, 200, "", false},
		{"post", url.Values{"grant_type": {"client_credentials"}, "client_id": {confID}, "client_secret": {confSecret}}, nil, 200, "", false},
		{"basic, wrong secret", ccForm(), hdr{"basic": confID + ":nope"}, 401, dpop.CodeInvalidClient, true},
		{"basic, unknown client", ccForm(), hdr{"basic": "nobody:" + confSecret}, 401, dpop.CodeInvalidClient, true},
		{"post, wrong secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {confID}, "client_secret": {"nope"}}, nil, 401, dpop.CodeInvalidClient, false},
		{"confidential client without secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {confID}}, nil, 401, dpop.CodeInvalidClient, false},
		{"no client at all", ccForm(), nil, 401, dpop.CodeInvalidClient, false},
		{"public client with a secret", url.Values{"grant_type": {"authorization_code"}, "client_id": {pubID}, "client_secret": {"x"}, "code": {"c"}}, nil, 401, dpop.CodeInvalidClient, false},
		{"public client, client_credentials", url.Values{"grant_type": {"client_credentials"}, "client_id": {pubID}}, nil, 400, dpop.CodeUnauthorizedClient, false},
		{"two methods", url.Values{"grant_type": {"client_credentials"}, "client_secret": {confSecret}}, hdr{"basic": confID + ":" + confSecret}, 400, dpop.CodeInvalidRequest, false},
		{"Basic and a different client_id", url.Values{"grant_type": {"client_credentials"}, "client_id": {bearerID}}, hdr{"basic": confID + ":" + confSecret}, 401, dpop.CodeInvalidClient, true},
		{"Bearer Authorization header", ccForm(), hdr{"Authorization": "Bearer x"}, 401, dpop.CodeInvalidClient, false},
		{"secret with a trailing space", ccForm(), hdr{"basic": confID + ":" + confSecret + " "}, 401, dpop.CodeInvalidClient, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			headers := hdr{"DPoP": h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{})}
			for k, v := range tc.headers {
				headers[k] = v
			}
			r := h.postForm(DefaultPaths.Token, tc.form, headers)
			if tc.status == 200 {
				wantToken(t, r, TokenTypeDPoP)
				return
			}
			wantError(t, r, tc.status, tc.code)
			if got := r.header.Get("WWW-Authenticate"); (got != "") != tc.basicHeader || (tc.basicHeader && !strings.HasPrefix(got, "Basic")) {
				t.Errorf("WWW-Authenticate %q, want Basic: %v", got, tc.basicHeader)
			}
		})
	}
}

// RFC 6749 §5.2 errors that do not depend on a grant.
func TestTokenRequestErrors(t *testing.T) {
	h := newHarness(t, nil)
	basic := map[string]string{"basic": confID + ":" + confSecret}
	t.Run("GET", func(t *testing.T) {
		req, _ := http.NewRequest("GET", h.ts.URL+DefaultPaths.Token, nil)
		r := h.do(req)
		wantError(t, r, 405, dpop.CodeInvalidRequest)
		if r.header.Get("Allow") != "POST" {
			t.Error("no Allow header")
		}
	})
	t.Run("JSON body", func(t *testing.T) {
		req, _ := http.NewRequest("POST", h.ts.URL+DefaultPaths.Token, strings.NewReader(`{"grant_type":"client_credentials"}`))
		req.Header.Set("Content-Type", "application/json")
		wantError(t, h.do(req), 400, dpop.CodeInvalidRequest)
	})
	t.Run("parameters in the query", func(t *testing.T) {
		req, _ := http.NewRequest("POST", h.ts.URL+DefaultPaths.Token+"?client_secret=x", strings.NewReader(ccForm().Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		wantError(t, h.do(req), 400, dpop.CodeInvalidRequest)
	})
	t.Run("oversized body", func(t *testing.T) {
		f := ccForm()
		f.Set("pad", strings.Repeat("a", DefaultMaxBodyBytes))
		wantError(t, h.postForm(DefaultPaths.Token, f, basic), 413, dpop.CodeInvalidRequest)
	})
	for name, body := range map[string]string{
		"repeated grant_type":    "grant_type=client_credentials&grant_type=client_credentials",
		"repeated client_secret": "grant_type=client_credentials&client_id=conf&client_secret=a&client_secret=" + confSecret,
		"bad encoding":           "grant_type=%zz",
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", h.ts.URL+DefaultPaths.Token, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			wantError(t, h.do(req), 400, dpop.CodeInvalidRequest)
		})
	}
	for _, tc := range []struct {
		name string
		code dpop.ErrorCode
		form url.Values
	}{
		{"missing grant_type", dpop.CodeInvalidRequest, url.Values{"scope": {"read"}}},
		{"password grant", dpop.CodeUnsupportedGrantType, url.Values{"grant_type": {"password"}}},
		{"implicit-looking grant", dpop.CodeUnsupportedGrantType, url.Values{"grant_type": {"token"}}},
		{"unregistered scope", dpop.CodeInvalidScope, url.Values{"grant_type": {"client_credentials"}, "scope": {"read admin"}}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantError(t, h.tokenRequest(tc.form), 400, tc.code) })
	}
	t.Run("grant not registered for the client", func(t *testing.T) {
		r := h.postForm(DefaultPaths.Token, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}},
			map[string]string{"basic": bearerID + ":" + bearerSecret, "DPoP": h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{})})
		wantError(t, r, 400, dpop.CodeUnauthorizedClient)
	})
	t.Run("requested scope subset", func(t *testing.T) {
		r := wantToken(t, h.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}), TokenTypeDPoP)
		if r.str("scope") != "read" {
			t.Fatalf("scope %q", r.str("scope"))
		}
	})
}

// failingStore is a store whose every lookup fails, as one that is down.
type failingStore struct{ *store.Memory }

var errDown = errors.New("connection refused")

func (failingStore) GetClient(context.Context, string) (*store.Client, error) { return nil, errDown }

// Checklist 5: a store that is down makes requests fail closed.
func TestTokenStoreDown(t *testing.T) {
	h := newHarness(t, nil)
	srv, err := New(Config{Issuer: h.ts.URL, Store: failingStore{h.store}})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", DefaultPaths.Token, strings.NewReader(ccForm().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(confID, confSecret)
	req.Header.Set("DPoP", h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{}))
	r := httptest.NewRecorder()
	srv.TokenHandler().ServeHTTP(r, req)
	if r.Code != http.StatusServiceUnavailable || !strings.Contains(r.Body.String(), string(dpop.CodeServerError)) {
		t.Fatalf("got %d %s", r.Code, r.Body)
	}
}

// Each token request of many goroutines gets its own token (a smoke test of
// the handler under -race).
func TestTokenConcurrentClientCredentials(t *testing.T) {
	h := newHarness(t, nil)
	var wg sync.WaitGroup
	seen := sync.Map{}
	for range 16 {
		wg.Go(func() {
			r := h.tokenRequest(ccForm())
			if r.status != 200 {
				t.Errorf("%d %s", r.status, r.raw)
				return
			}
			if _, dup := seen.LoadOrStore(r.str("access_token"), true); dup {
				t.Error("the same access token twice")
			}
		})
	}
	wg.Wait()
}
