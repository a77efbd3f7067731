package handlers

// AuthPrivateKeyJWT is the private_key_jwt client authentication method
// (RFC 7523 §2.2, OpenID Connect Core §9): the client proves itself with a
// JWT signed by one of its registered keys (store.Client.JWKS or JWKSURI).
const AuthPrivateKeyJWT = "private_key_jwt"

// ClientAssertionOptions configures private_key_jwt client authentication
// (Config.ClientAssertion).
type ClientAssertionOptions struct{}

// clientAuthMethods are the client authentication methods the token
// endpoint (with none, for public clients) and the revocation and
// introspection endpoints accept (RFC 8414 §2).
func (s *Server) clientAuthMethods(withNone bool) []string {
	m := []string{AuthSecretBasic, AuthSecretPost}
	if withNone {
		m = append(m, AuthNone)
	}
	return m
}
