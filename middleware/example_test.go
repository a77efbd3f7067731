package middleware_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
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
		Subject: "alice", ClientID: "app", Scope: "read", JKT: signer.JKT(), ExpiresAt: time.Now().Add(time.Hour)})
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

func mustKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}
