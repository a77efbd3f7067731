package store_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/dpopkit/dpop/store"
)

// Registering a confidential client: the server generates its secret,
// hands it to the client once and keeps only the hash.
func ExampleGenerateSecret() {
	secret, hash := store.GenerateSecret()
	client := &store.Client{
		ID:         "billing-service",
		SecretHash: hash,
		GrantTypes: []string{store.GrantClientCredentials},
		Scopes:     []string{"invoices:read"},
		DPoPBound:  true,
	}
	st, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	if err := st.SaveClient(context.Background(), client); err != nil {
		panic(err)
	}
	// The secret goes to the client's operator, over a secure channel.
	fmt.Println(len(secret), client.SecretMatches(secret))
	// Output: 43 true
}

// Every store refuses, when it is saved, a client that Validate refuses.
func ExampleClient_Validate() {
	public := &store.Client{
		ID:           "mobile-app", // no secret: a public client
		GrantTypes:   []string{store.GrantAuthorizationCode, store.GrantClientCredentials},
		RedirectURIs: []string{"com.example.app:/callback"},
	}
	err := public.Validate()
	fmt.Println(errors.Is(err, store.ErrInvalidClientMetadata))
	fmt.Println(err)

	public.GrantTypes = []string{store.GrantAuthorizationCode, store.GrantRefreshToken}
	public.RedirectURIs = append(public.RedirectURIs, "https://app.example/callback#done")
	fmt.Println(public.Validate())

	public.RedirectURIs = public.RedirectURIs[:1]
	fmt.Println(public.Validate())
	// Output:
	// true
	// store: invalid client metadata: a public client (no secret) cannot use the client_credentials grant
	// store: invalid client metadata: invalid redirect uri "https://app.example/callback#done": has a fragment
	// <nil>
}
