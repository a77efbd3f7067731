// Package testkit is what the tests of several packages share: the kit, an
// authorization server (package handlers) and an API behind package
// middleware over one store on a loopback listener, with its test clients
// and the requests they send it; the benchmarks of the token endpoint and
// the middleware over a store; and helpers for store tests. adaptertest
// runs its several-instances suite on it, the store adapters their outage
// tests and benchmarks.
//
// It is a package of its own, not a _test.go file, so that packages in
// other modules of the workspace can import it; being internal, it is not
// part of the API. It imports only the root module's packages and the
// standard library. The tests inside packages handlers and middleware
// cannot import it, since it imports those packages: what they share with
// it, signers and proofs, is in package dpoptest.
package testkit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/middleware"
	"github.com/dpopkit/dpop/store"
)

// Options are a kit's settings; the zero value is a kit without server
// nonces.
type Options struct {
	// Name is what the API answers with as "instance", to tell kits
	// apart.
	Name string
	// DPoP is the proof checking of both the token endpoint and the API:
	// Nonces, say. The replay cache is the store.
	DPoP dpop.VerifierOptions
}

// Kit is a running authorization server and API over one store: every
// endpoint of package handlers, and APIPath behind package middleware,
// which answers with the principal's sub and client_id and the kit's name
// as instance. It listens on a loopback httptest server (URL), while its
// issuer and resource URL are PublicURL.
type Kit struct {
	// Name is the kit's name (Options.Name).
	Name string
	// URL is where the kit listens.
	URL string
	// Nonce is the server nonce the proofs Proof makes carry; "" for none.
	Nonce string
	ts    *httptest.Server
}

// New starts a kit over s, stopped when tb ends. It registers no client:
// see RegisterClients.
func New(tb testing.TB, s store.Store, opts Options) *Kit {
	tb.Helper()
	srv := AuthServer(tb, PublicURL, s, opts.DPoP)
	protect := Protect(tb, PublicURL, s, opts.DPoP)
	mux := http.NewServeMux()
	srv.Mount(mux)
	mux.Handle(APIPath, protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := middleware.PrincipalFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"sub": p.Subject, "client_id": p.ClientID, "instance": opts.Name})
	})))
	ts := httptest.NewServer(mux)
	tb.Cleanup(ts.Close)
	return &Kit{Name: opts.Name, URL: ts.URL, ts: ts}
}

// AuthServer is the authorization server of package handlers over s, with
// the given issuer and proof checks (v: nonces or a quota, say; the replay
// cache is the store's).
func AuthServer(tb testing.TB, issuer string, s store.Store, v dpop.VerifierOptions) *handlers.Server {
	tb.Helper()
	srv, err := handlers.New(handlers.Config{Issuer: issuer, Store: s, DPoP: v, OneRoundTrip: true})
	fatalIf(tb, err, "handlers.New")
	return srv
}

// Protect is the middleware of an API at resourceURL over s: it looks
// tokens up in s (middleware.StoreValidator), which is also its replay
// cache, and checks proofs with v otherwise.
func Protect(tb testing.TB, resourceURL string, s store.Store, v dpop.VerifierOptions) func(http.Handler) http.Handler {
	tb.Helper()
	v.ReplayCache = s
	mw, err := middleware.New(middleware.Options{ResourceURL: resourceURL, Validator: middleware.StoreValidator{Store: s, OneRoundTrip: true}, DPoP: v})
	fatalIf(tb, err, "middleware.New")
	return mw
}

// fatalIf fails tb on an error, saying what failed.
func fatalIf(tb testing.TB, err error, what string) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}
