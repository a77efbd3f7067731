package middleware_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/middleware"
	"github.com/dpopkit/dpop/store"
)

// Wrapping one route of a ServeMux: only requests with a DPoP-bound token and
// a valid proof reach the handler, which reads the principal.
func ExampleNew() {
	tokens, _ := store.NewMemory(store.MemoryOptions{}) // shared with the authorization server
	protect, err := middleware.New(middleware.Options{
		ResourceURL: "https://api.example.com",
		Validator:   middleware.StoreValidator{Store: tokens},
		DPoP:        dpop.VerifierOptions{ReplayCache: tokens},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /api/hello", protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := middleware.PrincipalFrom(r.Context())
		fmt.Fprintf(w, "hello %s", p.Subject)
	})))

	// What the authorization server would have stored, and a client's request.
	signer, _ := dpop.NewSigner(mustKey(), dpop.SignerOptions{})
	tokens.SaveAccessToken(context.Background(), store.HashToken("tok-123"), &store.AccessToken{
		Subject: "alice", ClientID: "app", Scope: "read", JKT: signer.JKT(), ExpiresAt: time.Now().Add(time.Hour),
		Audience: []string{"https://api.example.com"}})
	proof, _ := signer.Proof("GET", "https://api.example.com/api/hello", dpop.ProofOptions{AccessToken: "tok-123"})
	r := httptest.NewRequest("GET", "/api/hello", nil)
	r.Header.Set("Authorization", "DPoP tok-123")
	r.Header.Set("DPoP", proof)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	fmt.Println(w.Code, w.Body.String())

	// Without credentials: a challenge naming the accepted algorithms.
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/api/hello", nil))
	fmt.Println(w.Code, w.Header().Get("WWW-Authenticate")[:len(`DPoP algs="ES256`)])
	// Output:
	// 200 hello alice
	// 401 DPoP algs="ES256
}

// An API known by two identifiers (RFC 8707 resource indicators) accepts a
// token whose audience names either, and refuses one meant for another API
// with 401 invalid_token, whichever validator read the token.
func ExampleOptions_audiences() {
	tokens, _ := store.NewMemory(store.MemoryOptions{})
	protect, err := middleware.New(middleware.Options{
		ResourceURL: "https://api.example.com",
		Audiences:   []string{"https://api.example.com", "urn:example:invoices"},
		Validator:   middleware.StoreValidator{Store: tokens},
		DPoP:        dpop.VerifierOptions{ReplayCache: tokens},
	})
	if err != nil {
		panic(err)
	}
	api := protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := middleware.PrincipalFrom(r.Context())
		fmt.Fprintf(w, "hello %s, tenant %v", p.Subject, p.Claims["tenant"])
	}))

	signer, _ := dpop.NewSigner(mustKey(), dpop.SignerOptions{})
	call := func(token string, audience ...string) {
		tokens.SaveAccessToken(context.Background(), store.HashToken(token), &store.AccessToken{
			Subject: "alice", ClientID: "app", Scope: "read", JKT: signer.JKT(), ExpiresAt: time.Now().Add(time.Hour),
			Audience: audience, Claims: []byte(`{"tenant":"acme"}`)})
		proof, _ := signer.Proof("GET", "https://api.example.com/invoices", dpop.ProofOptions{AccessToken: token})
		r := httptest.NewRequest("GET", "/invoices", nil)
		r.Header.Set("Authorization", "DPoP "+token)
		r.Header.Set("DPoP", proof)
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		fmt.Println(w.Code, strings.TrimSpace(w.Body.String()))
	}
	call("tok-1", "urn:example:invoices")
	call("tok-2", "https://billing.example.com")
	// Output:
	// 200 hello alice, tenant acme
	// 401 {"error":"invalid_token","error_description":"the access token is not meant for this resource"}
}

func mustKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}
