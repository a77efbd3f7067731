// Package handlers provides the authorization-server side of the DPoP kit as
// plain net/http handlers: the token endpoint (RFC 6749 §3.2, RFC 9449 §5)
// with the client credentials, authorization code (with PKCE, RFC 7636, and
// dpop_jkt, RFC 9449 §10) and refresh token grants; the authorization
// endpoint (RFC 6749 §3.1); revocation (RFC 7009); introspection (RFC 7662);
// authorization server metadata (RFC 8414); and a JWKS for JWT access
// tokens (RFC 9068).
//
// A host builds one [Server] from a [Config] and mounts its handlers on its
// own router, one by one or all at once with [Server.Mount]. Everything the
// server remembers goes through a [store.Store], so the same code runs on
// the in-memory store, Redis, PostgreSQL or the host's own.
package handlers
