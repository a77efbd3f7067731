package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

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
	// origin is the issuer's scheme and authority, and mounted the request
	// path of each endpoint (mountPaths): what Mount registers and what
	// metadata advertises after origin.
	origin  string
	mounted Paths
	// pushed keeps pushed authorization requests: Config.Store, when it
	// implements store.PushedRequestStore; nil otherwise (no PAR).
	pushed store.PushedRequestStore
	// assertions is the private_key_jwt state: options, parsed key sets,
	// fetched jwks_uri documents.
	assertions *assertionSettings
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
	// Resources are the resources the tokens of this authorization will be
	// for (RFC 8707 §2.1), as Config.ResourcePolicy granted them (or
	// Config.Audience), for a consent screen to show.
	Resources []string
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
	assertions, err := newAssertionSettings(c)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: c, verifier: v, assertions: assertions}
	s.pushed, _ = c.Store.(store.PushedRequestStore)
	if c.RequirePAR && s.pushed == nil {
		return nil, errors.New("handlers: Config.RequirePAR needs a Config.Store that implements store.PushedRequestStore")
	}
	s.origin, s.mounted = mountPaths(c.Issuer, c.Paths)
	if !s.parOffered() {
		s.mounted.PushedAuthorization = ""
	}
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

// url returns the public URL of an endpoint path relative to the issuer:
// the issuer followed by path. For each of Config.Paths but Metadata this is
// s.origin followed by its mounted path (mountPaths).
func (s *Server) url(path string) string { return s.cfg.Issuer + path }

// mountPaths splits the normalised issuer into its origin (scheme and
// authority, RFC 3986 §3) and its path, and returns the origin with the
// request path at which each endpoint is served, so that the URL metadata
// advertises (origin followed by the path) is the one Mount registers:
//
//   - each endpoint but the metadata at the issuer's path followed by its
//     entry of p, so that its URL is the issuer followed by that entry;
//   - the metadata at p.Metadata followed by the issuer's path: RFC 8414
//     §3.1 inserts the well-known path between the host and the path of an
//     issuer that has one.
//
// The issuer's path is taken from the issuer string as Config.normalize left
// it, in its percent-encoded form (RFC 3986 §6.2.2) and without a trailing
// "/", so that origin followed by the issuer's path is the issuer exactly.
// Without a path the result is p itself.
func mountPaths(issuer string, p Paths) (origin string, mounted Paths) {
	origin, path := issuer, ""
	if i := strings.Index(issuer, "://"); i >= 0 {
		if j := strings.IndexByte(issuer[i+3:], '/'); j >= 0 {
			origin, path = issuer[:i+3+j], issuer[i+3+j:]
		}
	}
	return origin, Paths{
		Token:      path + p.Token,
		Authorize:  path + p.Authorize,
		Revoke:     path + p.Revoke,
		Introspect: path + p.Introspect,
		JWKS:       path + p.JWKS,
		Metadata:   p.Metadata + path,

		PushedAuthorization: path + p.PushedAuthorization,
	}
}

// MountPaths returns the request paths at which [Server.Mount] registers
// each endpoint, for a host that mounts the handlers on its own: for an
// issuer with a path, that path followed by the entry of Config.Paths, and
// for the metadata Config.Paths.Metadata followed by that path (RFC 8414
// §3.1). Without a path in the issuer they are Config.Paths as New
// completed them. Paths are percent-encoded as in the issuer. JWKS is set
// whatever the token format, though Mount registers it only with JWT access
// tokens; PushedAuthorization is empty when the server does not offer
// pushed authorization requests ([Server.PushedAuthorizationHandler]).
func (s *Server) MountPaths() Paths { return s.mounted }

// Router is what Mount needs of a router: http.ServeMux and chi's Router
// have this method.
type Router interface {
	Handle(pattern string, handler http.Handler)
}

// Mount registers every endpoint on r: token, authorize, revoke, introspect,
// metadata, with JWT access tokens the JWKS and, when the server offers
// them, pushed authorization requests (when Config.Store implements
// store.PushedRequestStore and Config.Authenticate is set), each where the
// metadata document says it is ([Server.MountPaths]).
//
// Config.Paths are relative to the issuer. With an issuer without a path,
// such as https://as.example.com, each endpoint is registered at its entry
// of Config.Paths: /oauth2/token, /.well-known/oauth-authorization-server.
// With an issuer that has a path, such as https://as.example.com/tenant1,
// every endpoint is registered under that path (/tenant1/oauth2/token,
// /tenant1/oauth2/authorize, and so on: the issuer followed by the entry,
// as advertised), while the metadata is registered at Config.Paths.Metadata
// followed by the issuer's path, /.well-known/oauth-authorization-server/tenant1,
// where RFC 8414 §3.1 tells clients to look for it. Nothing is registered at
// the unprefixed paths then.
//
// The patterns hold the issuer's path percent-encoded as in the normalised
// issuer; http.ServeMux decodes each segment of a pattern and of a request
// path alike, so an escaped character such as %2F matches only itself.
//
// The handlers do not depend on the request path (the token endpoint checks
// proofs against its advertised URL), so a host behind a proxy that strips
// the issuer's path mounts the handlers itself, at the paths the requests
// reach it with, instead of calling Mount.
func (s *Server) Mount(r Router) {
	p := s.mounted
	r.Handle(p.Token, s.TokenHandler())
	r.Handle(p.Authorize, s.AuthorizeHandler())
	r.Handle(p.Revoke, s.RevocationHandler())
	r.Handle(p.Introspect, s.IntrospectionHandler())
	r.Handle(p.Metadata, s.MetadataHandler())
	if s.cfg.AccessTokenFormat == FormatJWT {
		r.Handle(p.JWKS, s.JWKSHandler())
	}
	if s.parOffered() {
		r.Handle(p.PushedAuthorization, s.PushedAuthorizationHandler())
	}
}
