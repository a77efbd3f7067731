package dpop_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dpopkit/dpop"
)

// A client makes one proof per request. The key and jti are random; this
// example prints the parts of the proof that are not.
func ExampleSigner_Proof() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	signer, err := dpop.NewSigner(key, dpop.SignerOptions{
		Now: func() time.Time { return time.Unix(1562262616, 0) },
	})
	if err != nil {
		log.Fatal(err)
	}
	proof, err := signer.Proof("GET", "https://resource.example.org/protectedresource?page=2",
		dpop.ProofOptions{AccessToken: "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"})
	if err != nil {
		log.Fatal(err)
	}

	parts := strings.Split(proof, ".")
	var header struct{ Typ, Alg string }
	var claims struct {
		HTM, HTU, ATH string
		IAT           int64
	}
	decode := func(segment string, v any) {
		b, err := base64.RawURLEncoding.DecodeString(segment)
		if err != nil {
			log.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			log.Fatal(err)
		}
	}
	decode(parts[0], &header)
	decode(parts[1], &claims)
	fmt.Println("typ:", header.Typ)
	fmt.Println("alg:", header.Alg)
	fmt.Println("htm:", claims.HTM)
	fmt.Println("htu:", claims.HTU)
	fmt.Println("iat:", claims.IAT)
	fmt.Println("ath:", claims.ATH)
	// Output:
	// typ: dpop+jwt
	// alg: ES256
	// htm: GET
	// htu: https://resource.example.org/protectedresource
	// iat: 1562262616
	// ath: fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo
}

// A Transport signs every request of an http.Client. Here the server first
// asks for a nonce, and the Transport retries once with it.
func ExampleTransport() {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			w.Header().Set("DPoP-Nonce", "eyJ7S_zG.eyJH0-Z.HX4w-7v")
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "proof present: %t", r.Header.Get("DPoP") != "")
	}))
	defer srv.Close()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	signer, err := dpop.NewSigner(key, dpop.SignerOptions{})
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: dpop.NewTransport(signer, nil)}

	req, err := http.NewRequest("GET", srv.URL+"/protectedresource", nil)
	if err != nil {
		log.Fatal(err)
	}
	// As golang.org/x/oauth2 writes it for a token of type DPoP.
	req.Header.Set("Authorization", "DPoP Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU")
	resp, err := client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	fmt.Println("requests:", requests.Load())
	// Output:
	// 200 proof present: true
	// requests: 2
}
