// Package store defines what the DPoP kit keeps between requests, as small
// interfaces shared by the token endpoint handlers and the resource
// middleware, and provides the default bounded in-memory implementation.
//
// # Hashes, never values
//
// Authorization codes, access tokens and refresh tokens are bearer secrets
// (RFC 6749 §10.3, §10.4, §10.5). A store never sees them: callers hash a
// value with [HashToken] before every call, and a store keys its records by
// that [TokenHash] only. A leaked database therefore holds nothing that can be
// presented to the server. Client secrets are stored as [HashSecret] output
// in [Client.SecretHash] and compared in constant time with
// [Client.SecretMatches].
//
// # Implementing a store
//
// Every method takes a context first and honours its cancellation. Lookups
// never return an expired record. Consuming a code, rotating a refresh token
// and inserting a replay entry are atomic: of any number of concurrent
// callers exactly one wins. A store that cannot be sure (full, unreachable)
// returns an error, and the kit refuses the request. Records passed in and
// returned are copies: neither side may keep using the other's. Times are
// kept to at least millisecond precision. The package adaptertest checks all
// of this against any implementation.
package store
