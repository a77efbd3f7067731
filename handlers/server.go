package handlers

import (
	"fmt"
	"net/http"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// Server is the authorization server: build it with [New], then mount its
// handlers. It is safe for concurrent use.
type Server struct {
	cfg      Config
	verifier *dpop.Verifier
	tokens   AccessTokens
	jwks     []byte // the JWK Set document; nil with opaque tokens
}

// AuthorizationRequest is a validated authorization request (RFC 6749
// §4.1.1), handed to the host's Authenticator.
type AuthorizationRequest struct {
	Client              *store.Client
	RedirectURI         string
	Scopes              []string
	State               string
	CodeChallenge       string
	CodeChallengeMethod string
	// DPoPJKT is the dpop_jkt parameter (RFC 9449 §10), or "".
	DPoPJKT string
}

// New validates cfg and returns a server.
func New(cfg Config) (*Server, error) {
	c, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	v, err := dpop.NewVerifier(c.DPoP)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: c, verifier: v}
	if c.AccessTokenFormat == FormatJWT {
		jt, err := newJWTAccessTokens(c)
		if err != nil {
			return nil, err
		}
		if s.jwks, err = jwksDocument(jt.JWKS()); err != nil {
			return nil, fmt.Errorf("handlers: Config.SigningKeys cannot be published as a JWK Set: %w", err)
		}
		s.tokens = jt
	} else {
		s.tokens = opaqueAccessTokens{store: c.Store}
	}
	return s, nil
}

// Verifier returns the proof verifier of the token endpoint, whose
// Algorithms are what metadata advertises.
func (s *Server) Verifier() *dpop.Verifier { return s.verifier }

// AccessTokens returns the access token format in use.
func (s *Server) AccessTokens() AccessTokens { return s.tokens }

// url returns the public URL of an endpoint path.
func (s *Server) url(path string) string { return s.cfg.Issuer + path }

// Router is what Mount needs of a router: http.ServeMux and chi's Router
// have this method.
type Router interface {
	Handle(pattern string, handler http.Handler)
}

// Mount registers every endpoint on r at Config.Paths: token, authorize,
// revoke, introspect, metadata and, with JWT access tokens, the JWKS.
func (s *Server) Mount(r Router) {
	p := s.cfg.Paths
	r.Handle(p.Token, s.TokenHandler())
	r.Handle(p.Authorize, s.AuthorizeHandler())
	r.Handle(p.Revoke, s.RevocationHandler())
	r.Handle(p.Introspect, s.IntrospectionHandler())
	r.Handle(p.Metadata, s.MetadataHandler())
	if s.cfg.AccessTokenFormat == FormatJWT {
		r.Handle(p.JWKS, s.JWKSHandler())
	}
}
