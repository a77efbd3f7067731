package middleware

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Separate processes in spirit: an authorization server on one httptest
// server, a resource server on another that shares nothing with it but
// URLs, validating tokens through the first one's JWKS or its introspection
// endpoint. A client with the kit's Transport gets a token and calls the API.
func TestResourceServerSeparateFromAuthorizationServer(t *testing.T) {
	for _, mode := range []string{"jwt via JWKS", "introspection"} {
		t.Run(mode, func(t *testing.T) {
			asStore, err := store.NewMemory(store.MemoryOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { asStore.Close() })
			var asHandler atomic.Pointer[http.ServeMux]
			as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asHandler.Load().ServeHTTP(w, r) }))
			t.Cleanup(as.Close)
			var rsHandler atomic.Pointer[http.Handler]
			rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*rsHandler.Load()).ServeHTTP(w, r) }))
			t.Cleanup(rs.Close)
			// The app registers no resources: its tokens carry the
			// server's audience, the API's URL. The API may introspect
			// the tokens meant for it (RFC 7662 §4).
			for _, c := range []*store.Client{
				{ID: "app", SecretHash: store.HashSecret("app-secret-0123456789"), GrantTypes: []string{handlers.GrantClientCredentials}, Scopes: []string{"read"}, DPoPBound: true},
				{ID: "rs", SecretHash: store.HashSecret("rs-secret-0123456789"), Introspect: true, Resources: []string{rs.URL}},
			} {
				if err := asStore.SaveClient(bg, c); err != nil {
					t.Fatal(err)
				}
			}

			cfg := handlers.Config{Issuer: as.URL, Store: asStore, Audience: []string{rs.URL}}
			if mode == "jwt via JWKS" {
				priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				k, _ := jwk.FromRaw(priv)
				k.Set(jwk.KeyIDKey, "as-1")
				k.Set(jwk.AlgorithmKey, jwa.ES256)
				set := jwk.NewSet()
				set.AddKey(k)
				cfg.AccessTokenFormat, cfg.SigningKeys = handlers.FormatJWT, set
			}
			srv, err := handlers.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			srv.Mount(mux)
			asHandler.Store(mux)

			var validator TokenValidator
			if mode == "jwt via JWKS" {
				validator, err = NewJWTValidator(t.Context(), JWTOptions{Issuer: as.URL, JWKSURL: as.URL + handlers.DefaultPaths.JWKS})
			} else {
				validator, err = NewIntrospectionValidator(IntrospectionOptions{Endpoint: as.URL + handlers.DefaultPaths.Introspect, ClientID: "rs", ClientSecret: "rs-secret-0123456789"})
			}
			if err != nil {
				t.Fatal(err)
			}
			mw, err := New(Options{ResourceURL: rs.URL, Validator: validator})
			if err != nil {
				t.Fatal(err)
			}
			var api http.Handler = mw(http.HandlerFunc(hello))
			rsHandler.Store(&api)

			signer := newSigner(t)
			client := &http.Client{Transport: dpop.NewTransport(signer, nil)}
			req, _ := http.NewRequest("POST", as.URL+handlers.DefaultPaths.Token, strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("app", "app-secret-0123456789")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var tok struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
			}
			json.NewDecoder(resp.Body).Decode(&tok)
			resp.Body.Close()
			if resp.StatusCode != 200 || tok.TokenType != "DPoP" {
				t.Fatalf("token: %d %+v", resp.StatusCode, tok)
			}
			call := func(c *http.Client) (int, string) {
				req, _ := http.NewRequest("GET", rs.URL+"/api/hello", nil)
				req.Header.Set("Authorization", "DPoP "+tok.AccessToken)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			if status, body := call(client); status != 200 || !strings.Contains(body, signer.JKT()) || !strings.Contains(body, `"client_id":"app"`) {
				t.Fatalf("API: %d %s", status, body)
			}
			// The same token from a client with another key is refused.
			if status, _ := call(&http.Client{Transport: dpop.NewTransport(newSigner(t), nil)}); status != 401 {
				t.Fatalf("token used with another key: %d", status)
			}
		})
	}
}
