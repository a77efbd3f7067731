// Package dpop implements OAuth 2.0 Demonstrating Proof of Possession
// (DPoP, RFC 9449) for Go servers and clients.
//
// The server side is a [Verifier]: it checks a DPoP proof JWT against the
// request it came with (RFC 9449 §4.3), including replay protection through a
// [ReplayCache] and, optionally, server-provided nonces from a [NonceSource]
// (RFC 9449 §8, §9). A verified [Proof] carries the JWK thumbprint (RFC 7638)
// that access tokens are bound to.
//
// The client side is a [Signer], which turns a private key into proofs, and a
// [Transport], an [net/http.RoundTripper] that adds a proof to every request,
// binds it to the access token (`ath`) and follows `use_dpop_nonce`
// challenges once.
//
// Everything a verifier reads from the network is treated as hostile: the
// proof size is bounded, parsing is linear, and every failure, including a
// replay cache that is full or unreachable, ends in refusal.
package dpop
