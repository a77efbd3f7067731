package handlers

import (
	"encoding/json"
	"net/http"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// JWKSHandler serves the public keys that sign JWT access tokens as a JWK
// Set (RFC 7517 §5), Content-Type application/jwk-set+json (RFC 7517
// §8.5.1), at the jwks_uri of the metadata (RFC 8414 §2). Resource servers
// verify JWT access tokens with it (RFC 9068 §4).
//
// Only public halves of asymmetric keys are published: private members
// never appear, and a symmetric key among Config.SigningKeys is left out,
// since its only member is the secret itself. The set is built once, by
// New. GET and HEAD are answered with Cache-Control:
// public, max-age=300 (a resource server that meets an unknown kid should
// fetch again); other methods get 405. With opaque access tokens there is
// nothing to publish and every request is answered 404; [Server.Mount]
// does not mount it then.
func (s *Server) JWKSHandler() http.Handler {
	if s.jwks == nil {
		return http.NotFoundHandler()
	}
	return staticDocument("application/jwk-set+json", s.jwks)
}

// jwksDocument is the JWK Set document of keys: their public halves
// (publicOnly), as JSON. New builds it, so that a key set that cannot be
// published is refused at start rather than served as an error.
func jwksDocument(keys jwk.Set) ([]byte, error) {
	set, err := publicOnly(keys)
	if err != nil {
		return nil, err
	}
	return json.Marshal(set)
}

// publicOnly returns the public keys of keys: asymmetric keys only, a
// private one replaced by its public half.
func publicOnly(keys jwk.Set) (jwk.Set, error) {
	out := jwk.NewSet()
	for i := range keys.Len() {
		k, _ := keys.Key(i)
		private, err := jwk.IsPrivateKey(k)
		if err != nil {
			continue // symmetric: publishing it would publish the secret
		}
		if private {
			if k, err = k.PublicKey(); err != nil {
				return nil, err
			}
		}
		if err := out.AddKey(k); err != nil {
			return nil, err
		}
	}
	return out, nil
}
