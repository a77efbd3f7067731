package dpop_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/http"

	"github.com/dpopkit/dpop"
)

// A client that authenticates with private_key_jwt (RFC 7523) and binds its
// tokens with DPoP: the assertion transport adds a fresh client assertion to
// each token request, and the DPoP transport a proof to every request. With
// golang.org/x/oauth2, give this client to the oauth2 Config through the
// context (oauth2.HTTPClient) with AuthStyle oauth2.AuthStyleInParams.
func ExampleAssertionTransport() {
	clientKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // registered in the client's JWKS as "k1"
	dpopKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	assertions, err := dpop.NewSigner(clientKey, dpop.SignerOptions{})
	if err != nil {
		panic(err)
	}
	proofs, err := dpop.NewSigner(dpopKey, dpop.SignerOptions{})
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: dpop.NewTransport(proofs, &dpop.AssertionTransport{
		Signer:    assertions,
		Options:   dpop.AssertionOptions{ClientID: "fapi-client", Audience: "https://as.example.com", KeyID: "k1"},
		TokenURLs: []string{"https://as.example.com/oauth2/token", "https://as.example.com/oauth2/par"},
	})}
	fmt.Println(client.Transport != nil)
	// Output: true
}
