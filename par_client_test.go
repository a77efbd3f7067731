package dpop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// The client side of a FAPI 2.0 authorization against the kit's own server
// under ProfileFAPI2: PushAuthorization through AssertionTransport
// (private_key_jwt) under NewTransport (DPoP at PAR, RFC 9449 §10.1), then
// AuthorizationURL, answered with a 303 carrying the code and iss.
func TestPushAuthorizationFAPI2(t *testing.T) {
	clientKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dpopKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, err := jwk.FromRaw(clientKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub.Set(jwk.KeyIDKey, "k1")
	set := jwk.NewSet()
	set.AddKey(pub)
	jwks, _ := json.Marshal(set)

	st, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const redirect = "http://127.0.0.1:8765/callback"
	if err := st.SaveClient(context.Background(), &store.Client{ID: "fapi-client", JWKS: jwks, DPoPBound: true,
		GrantTypes: []string{handlers.GrantAuthorizationCode}, RedirectURIs: []string{redirect}, Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	var mux http.ServeMux
	ts := httptest.NewServer(&mux)
	t.Cleanup(ts.Close)
	as, err := handlers.New(handlers.Config{Issuer: ts.URL, Store: st, Profile: handlers.ProfileFAPI2,
		Authenticate: func(w http.ResponseWriter, r *http.Request, _ *handlers.AuthorizationRequest) (string, bool, error) {
			return "alice", false, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	as.Mount(&mux)
	paths := as.MountPaths()

	assertions, err := dpop.NewSigner(clientKey, dpop.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	proofs, err := dpop.NewSigner(dpopKey, dpop.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: dpop.NewTransport(proofs, &dpop.AssertionTransport{
		Signer:    assertions,
		Options:   dpop.AssertionOptions{ClientID: "fapi-client", Audience: ts.URL, KeyID: "k1"},
		TokenURLs: []string{ts.URL + paths.Token, ts.URL + paths.PushedAuthorization},
	})}
	params := url.Values{"response_type": {"code"}, "client_id": {"fapi-client"}, "redirect_uri": {redirect}, "scope": {"read"},
		"code_challenge": {handlers.S256Challenge(strings.Repeat("v", 43))}, "code_challenge_method": {"S256"}, "state": {"s1"}}
	p, err := dpop.PushAuthorization(context.Background(), client, ts.URL+paths.PushedAuthorization, params)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.RequestURI, "urn:ietf:params:oauth:request_uri:") || p.ExpiresIn != 60 {
		t.Fatalf("%+v", p)
	}
	u, err := dpop.AuthorizationURL(ts.URL+paths.Authorize, "fapi-client", p.RequestURI)
	if err != nil {
		t.Fatal(err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noRedirect.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc, _ := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusSeeOther || loc.Query().Get("code") == "" || loc.Query().Get("iss") != ts.URL || loc.Query().Get("state") != "s1" {
		t.Fatalf("authorization: %d %s", res.StatusCode, res.Header.Get("Location"))
	}

	// Refusals come back as *PARError.
	params.Set("code_challenge_method", "plain")
	_, err = dpop.PushAuthorization(context.Background(), client, ts.URL+paths.PushedAuthorization, params)
	var pe *dpop.PARError
	if !errors.As(err, &pe) || pe.StatusCode != http.StatusBadRequest || pe.Code != dpop.CodeInvalidRequest {
		t.Fatalf("plain PKCE: %v", err)
	}
	if _, err := dpop.PushAuthorization(context.Background(), client, ts.URL+paths.PushedAuthorization, url.Values{"request_uri": {"x"}}); err == nil {
		t.Error("request_uri was pushed")
	}
}

// PushAuthorization refuses answers that are not RFC 9126 §2.2 or §2.3, and
// requests it cannot send.
func TestPushAuthorizationAnswers(t *testing.T) {
	const good = `{"request_uri":"urn:x","expires_in":60}`
	for _, tc := range []struct {
		name, ct, body string
		status         int
		params         url.Values
		parError       bool // refused with a *PARError
	}{
		{"201 without request_uri", "application/json", `{"expires_in":60}`, 201, nil, false},
		{"201 without expires_in", "application/json", `{"request_uri":"urn:x"}`, 201, nil, false},
		{"201 not JSON", "text/html", `<html>`, 201, nil, false},
		{"201 JSON as text/plain", "text/plain", good, 201, nil, false},
		{"400 without an error member", "application/json", `{"error_description":"x"}`, 400, nil, false},
		{"400 not JSON", "application/json", `oops`, 400, nil, false},
		{"400 invalid_request", "application/json", `{"error":"invalid_request","error_description":"d"}`, 400, nil, true},
		{"too large, even when what fits is JSON", "application/json", good + strings.Repeat(" ", 20000), 201, nil, false},
		{"request_uri is never pushed", "application/json", good, 201, url.Values{"request_uri": {"urn:y"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ct)
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer ts.Close()
			params := tc.params
			if params == nil {
				params = url.Values{"client_id": {"c"}}
			}
			p, err := dpop.PushAuthorization(context.Background(), nil, ts.URL, params)
			var pe *dpop.PARError
			if err == nil || errors.As(err, &pe) != tc.parError {
				t.Fatalf("got %+v, %v; want an error (PARError %v)", p, err, tc.parError)
			}
		})
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, u := range []string{"://no scheme", closed.URL} {
		if _, err := dpop.PushAuthorization(context.Background(), nil, u, url.Values{}); err == nil {
			t.Errorf("PushAuthorization(%q) succeeded", u)
		}
	}
	if _, err := dpop.AuthorizationURL("/relative", "c", "urn:x"); err == nil {
		t.Error("relative authorization endpoint accepted")
	}
	u, err := dpop.AuthorizationURL("https://as.example/authorize?tenant=1", "c 1", "urn:x")
	if err != nil || u != "https://as.example/authorize?client_id=c+1&request_uri=urn%3Ax&tenant=1" {
		t.Errorf("AuthorizationURL: %q %v", u, err)
	}
}
