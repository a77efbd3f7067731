package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/store"
)

// A host plugs its own login into the authorization endpoint with an
// Authenticator; the endpoint checks the request, stores a code bound to
// the PKCE challenge and the dpop_jkt, and sends the user back with code,
// state and iss.
func ExampleServer_AuthorizeHandler() {
	st, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	err = st.SaveClient(context.Background(), &store.Client{
		ID:           "mobile-app",
		GrantTypes:   []string{"authorization_code", "refresh_token"},
		RedirectURIs: []string{"https://app.example/callback"},
		Scopes:       []string{"read"},
		DPoPBound:    true,
	})
	if err != nil {
		panic(err)
	}
	srv, err := handlers.New(handlers.Config{
		Issuer: "https://as.example",
		Store:  st,
		// A real host reads its session cookie, or sends the user to a
		// login page and returns handled = true.
		Authenticate: func(w http.ResponseWriter, r *http.Request, req *handlers.AuthorizationRequest) (string, bool, error) {
			if r.Header.Get("Cookie") != "session=alice" {
				http.Redirect(w, r, "/login", http.StatusFound)
				return "", true, nil
			}
			return "alice", false, nil
		},
	})
	if err != nil {
		panic(err)
	}

	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {"mobile-app"},
		"redirect_uri":          {"https://app.example/callback"},
		"state":                 {"k3y-7hq"},
		"code_challenge":        {handlers.S256Challenge("a-long-random-code-verifier-kept-by-the-client-0123")},
		"code_challenge_method": {"S256"},
		"dpop_jkt":              {handlers.S256Challenge("stands in for the client's JWK thumbprint")},
	}
	req := httptest.NewRequest(http.MethodGet, "https://as.example/oauth2/authorize?"+q.Encode(), nil)
	req.Header.Set("Cookie", "session=alice")
	rec := httptest.NewRecorder()
	srv.AuthorizeHandler().ServeHTTP(rec, req)

	loc, _ := url.Parse(rec.Header().Get("Location"))
	fmt.Println(rec.Code, loc.Host+loc.Path)
	fmt.Println("code issued:", loc.Query().Get("code") != "")
	fmt.Println("state:", loc.Query().Get("state"))
	fmt.Println("iss:", loc.Query().Get("iss"))
	// Output:
	// 302 app.example/callback
	// code issued: true
	// state: k3y-7hq
	// iss: https://as.example
}
