// Package examples holds runnable programs that show the DPoP kit at work,
// and the end-to-end test that drives them as a user would:
//
//   - server: one process that is both an authorization server (the
//     handlers package) and a DPoP-protected API (the middleware package),
//     on a plain http.ServeMux.
//   - client: a client that gets a DPoP-bound token from the demo, with
//     client credentials or the authorization code flow, and calls the API.
//   - proof: a command-line proof generator for trying the demo with curl.
//   - customstore: a store.Store of one's own, checked with adaptertest.
//
// Run them from the repository root, for example `go run ./examples/server`.
package examples
