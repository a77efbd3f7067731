package handlers

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// FuzzTokenRequest: whatever body a token request carries (parameters
// repeated, resource parameters of every shape, bad encodings), the token
// endpoint answers without panicking with one RFC 6749 §5.2 JSON error of a
// known code, and never issues a token without a DPoP proof.
func FuzzTokenRequest(f *testing.F) {
	auth := "client_id=" + confID + "&client_secret=" + confSecret
	for _, body := range []string{
		"grant_type=client_credentials&" + auth,
		"grant_type=client_credentials&resource=https%3A%2F%2Fapi.example&resource=https%3A%2F%2Fapi.example&" + auth,
		"grant_type=client_credentials&resource=%2Fapi&" + auth,
		"grant_type=client_credentials&resource=&resource=x%23y&" + auth,
		"grant_type=authorization_code&code=abc&resource=https%3A%2F%2Fbilling.example&" + auth,
		"grant_type=refresh_token&refresh_token=r&scope=read&resource=urn%3Ax&" + auth,
		"grant_type=client_credentials&grant_type=client_credentials&" + auth,
		"%zz=1", "grant_type", "=&&==", "",
	} {
		f.Add(body)
	}
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	if err := m.SaveClient(ctx, &store.Client{ID: confID, SecretHash: store.HashSecret(confSecret),
		GrantTypes: []string{GrantClientCredentials, GrantAuthorizationCode, GrantRefreshToken}, Scopes: []string{"read"},
		Resources: []string{rvAudience, resOther}, DPoPBound: true}); err != nil {
		f.Fatal(err)
	}
	srv, err := New(Config{Issuer: "https://as.example", Store: m})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.TokenHandler()
	known := map[dpop.ErrorCode]bool{
		dpop.CodeInvalidRequest: true, dpop.CodeInvalidClient: true, dpop.CodeInvalidGrant: true,
		dpop.CodeUnauthorizedClient: true, dpop.CodeUnsupportedGrantType: true, dpop.CodeInvalidScope: true,
		dpop.CodeInvalidTarget: true, dpop.CodeInvalidProof: true,
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "https://as.example/oauth2/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !known[dpop.ErrorCode(e.Error)] {
			t.Fatalf("body %q: answer %d %s", body, rec.Code, rec.Body)
		}
		if rec.Code != http.StatusBadRequest && rec.Code != http.StatusUnauthorized && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("body %q: status %d %s", body, rec.Code, rec.Body)
		}
	})
}
