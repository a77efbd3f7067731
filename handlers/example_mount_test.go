package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/store"
)

// sessions stands for the host's session store: session cookie to user,
// filled in by the host's login page.
var sessions = map[string]string{}

// sessionUser returns the user logged in on a request, if any.
func sessionUser(r *http.Request) (string, bool) {
	c, err := r.Cookie("session")
	if err != nil {
		return "", false
	}
	user, ok := sessions[c.Value]
	return user, ok
}

func ExampleServer_Mount() {
	ctx := context.Background()
	st, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	// Register a confidential client. Its secret is generated randomly at
	// registration and handed to the client once; only the hash is kept.
	err = st.SaveClient(ctx, &store.Client{
		ID:         "billing-service",
		SecretHash: store.HashSecret("generated-at-registration-with-crypto-rand"),
		GrantTypes: []string{"client_credentials"},
		Scopes:     []string{"invoices:read"},
		DPoPBound:  true,
	})
	if err != nil {
		log.Fatal(err)
	}

	srv, err := handlers.New(handlers.Config{
		Issuer: "https://auth.example.com",
		Store:  st,
		// End users log in with the host's own pages.
		Authenticate: func(w http.ResponseWriter, r *http.Request, _ *handlers.AuthorizationRequest) (string, bool, error) {
			if user, ok := sessionUser(r); ok {
				return user, false, nil
			}
			http.Redirect(w, r, "/login?next="+r.URL.Path, http.StatusFound)
			return "", true, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Mount(mux)

	// In production: http.ListenAndServe behind TLS. Here, a test server.
	ts := httptest.NewServer(mux)
	defer ts.Close()
	resp, err := http.Get(ts.URL + handlers.DefaultPaths.Metadata)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var md struct {
		Issuer        string   `json:"issuer"`
		Token         string   `json:"token_endpoint"`
		Revocation    string   `json:"revocation_endpoint"`
		DPoPAlgs      []string `json:"dpop_signing_alg_values_supported"`
		PKCEMethods   []string `json:"code_challenge_methods_supported"`
		IssParamInRsp bool     `json:"authorization_response_iss_parameter_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		log.Fatal(err)
	}
	fmt.Println(md.Issuer)
	fmt.Println(md.Token)
	fmt.Println(md.Revocation)
	fmt.Println(md.DPoPAlgs[0], md.PKCEMethods, md.IssParamInRsp)
	// Output:
	// https://auth.example.com
	// https://auth.example.com/oauth2/token
	// https://auth.example.com/oauth2/revoke
	// ES256 [S256] true
}
