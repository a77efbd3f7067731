package redisstore_test

import (
	"log"
	"net/http"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/middleware"
	"github.com/dpopkit/dpop/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// Several instances of one service share a Redis store: the authorization
// server's codes and tokens, and the proofs both the token endpoint and the
// API have accepted (RFC 9449 §11.1).
func ExampleNew() {
	client := redis.NewClient(&redis.Options{
		Addr: "127.0.0.1:6379",
		// Request deadlines bound every call, and an unreachable Redis
		// fails a request (503) quickly instead of holding it.
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		DialerRetries:         1,
		MaxRetries:            1,
	})
	defer client.Close() // the store never closes the caller's client

	s, err := redisstore.New(redisstore.Options{Client: client, Prefix: "myapp:dpop:"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	const public = "https://api.example.com" // the address clients use
	as, err := handlers.New(handlers.Config{Issuer: public, Store: s})
	if err != nil {
		log.Fatal(err)
	}
	protect, err := middleware.New(middleware.Options{
		ResourceURL: public,
		Validator:   middleware.StoreValidator{Store: s},
		DPoP:        dpop.VerifierOptions{ReplayCache: s},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	as.Mount(mux)
	mux.Handle("/api/", protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := middleware.PrincipalFrom(r.Context())
		w.Write([]byte("hello " + p.Subject))
	})))
	log.Fatal(http.ListenAndServe(":8080", mux))
}
