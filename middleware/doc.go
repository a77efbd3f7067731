// Package middleware protects API routes with DPoP-bound access tokens
// (RFC 9449 §7): a net/http middleware, func(http.Handler) http.Handler, that
// lets a request through only with `Authorization: DPoP <token>` and a valid
// DPoP proof for that request and that token, and puts the token's
// [Principal] in the request context.
//
// Tokens are checked by a [TokenValidator]: [StoreValidator] for opaque
// tokens in a store shared with the authorization server, [JWTValidator]
// for RFC 9068 JWT access tokens (keys given or fetched from a JWKS URL), and
// [IntrospectionValidator] for RFC 7662 introspection of a remote
// authorization server, with a bounded cache. Whichever validator read it,
// a token passes only when its audience names one of Options.Audiences
// (RFC 8707 §2, RFC 9068 §4; by default the ResourceURL): a token meant for
// another API is refused before its proof is checked.
//
// # CORS
//
// Browser clients must be able to read the WWW-Authenticate and DPoP-Nonce
// response headers to follow a nonce challenge, and to send the
// Authorization and DPoP request headers. A CORS layer in front of the
// middleware must expose and allow them; [CORSHeaders] lists them, and
// [ExposeDPoPHeaders] adds the expose list to every response for hosts that
// have no CORS library.
package middleware
