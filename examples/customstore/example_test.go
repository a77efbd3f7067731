package customstore_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/examples/customstore"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/middleware"
)

// A custom store goes wherever the kit takes a store: the authorization
// server's Config.Store, the API's StoreValidator and replay cache.
func Example() {
	st := customstore.New(customstore.Options{})
	defer st.Close()

	as, err := handlers.New(handlers.Config{Issuer: "https://auth.example.com", Store: st})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	as.Mount(mux)

	protect, err := middleware.New(middleware.Options{
		ResourceURL: "https://auth.example.com",
		DPoP:        dpop.VerifierOptions{ReplayCache: st},
		Validator:   middleware.StoreValidator{Store: st},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux.Handle("GET /api/", protect(http.NotFoundHandler()))
	fmt.Println("mounted")
	// Output: mounted
}
