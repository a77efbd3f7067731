package handlers

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/dpopkit/dpop"
)

// discoveryMaxAge is how long caches may keep the metadata and the JWKS.
// Both change only when the server is reconfigured; five minutes bounds how
// long a client works from an old copy after a key rotation or a move of an
// endpoint, and still spares the server a fetch per request.
const discoveryMaxAge = 300

// metadata is the authorization server metadata document (RFC 8414 §2).
type metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri,omitempty"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported,omitempty"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	RevocationAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	IntrospectionAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	// The algorithms of private_key_jwt assertions (RFC 8414 §2), at every
	// endpoint that authenticates clients.
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	RevocationAuthSigningAlgs         []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	IntrospectionAuthSigningAlgs      []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported,omitempty"`
	DPoPSigningAlgValuesSupported     []string `json:"dpop_signing_alg_values_supported"`
	AuthorizationResponseISSSupported bool     `json:"authorization_response_iss_parameter_supported,omitempty"`
	// RFC 9126 §5.
	PushedAuthorizationEndpoint string `json:"pushed_authorization_request_endpoint,omitempty"`
	RequirePushedAuthorization  bool   `json:"require_pushed_authorization_requests,omitempty"`
}

// MetadataHandler serves the authorization server metadata (RFC 8414 §3),
// mounted by [Server.Mount] at Config.Paths.Metadata (by default
// /.well-known/oauth-authorization-server, RFC 8414 §3.1) followed by the
// issuer's path, if it has one: /.well-known/oauth-authorization-server/tenant1
// for the issuer https://as.example.com/tenant1 ([Server.MountPaths]).
//
// The document (RFC 8414 §2) names the issuer, exactly as normalised by New
// (RFC 8414 §3.3), and the endpoints, each the issuer followed by its
// configured path: the issuer's origin followed by the path at which Mount
// registers the endpoint, so the two always agree; jwks_uri only with JWT access
// tokens, since opaque tokens are not signed. It advertises the code
// response type in the query response mode, the authorization code, client
// credentials and refresh token grants, client_secret_basic,
// client_secret_post and none at the token and revocation endpoints (none
// being a public client naming itself, RFC 7009 §2.1), the first two only at
// the introspection endpoint (public clients may not introspect), PKCE with
// S256 only
// (RFC 7636 §4.2), the proof algorithms the token endpoint accepts
// (dpop_signing_alg_values_supported, RFC 9449 §5.1) and the iss
// authorization response parameter (RFC 9207 §3). scopes_supported is left
// out: scopes are registered per client.
//
// When the server offers pushed authorization requests (Config.Store
// implements store.PushedRequestStore), the document names their endpoint
// (pushed_authorization_request_endpoint, RFC 9126 §5) and, with
// Config.RequirePAR, require_pushed_authorization_requests: true.
//
// It advertises only what the server offers: without Config.Authenticate
// there is no authorization code flow, so the document has no
// authorization_endpoint (RFC 8414 §2: required only where a grant uses
// it), an empty response_types_supported, the client credentials grant
// alone (refresh tokens come only with codes), and no PKCE, response mode
// or iss parameter.
//
// The document is built once, when the handler is made, because the
// configuration it reflects never changes. GET and HEAD are answered with
// Cache-Control: public, max-age=300; other methods get 405.
func (s *Server) MetadataHandler() http.Handler {
	m := metadata{
		Issuer:                            s.cfg.Issuer,
		AuthorizationEndpoint:             s.origin + s.mounted.Authorize,
		TokenEndpoint:                     s.origin + s.mounted.Token,
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               []string{"authorization_code", "client_credentials", "refresh_token"},
		TokenEndpointAuthMethodsSupported: s.clientAuthMethods(true),
		RevocationEndpoint:                s.origin + s.mounted.Revoke,
		RevocationAuthMethodsSupported:    s.clientAuthMethods(true),
		IntrospectionEndpoint:             s.origin + s.mounted.Introspect,
		IntrospectionAuthMethodsSupported: s.clientAuthMethods(false),
		TokenEndpointAuthSigningAlgs:      s.ClientAssertionAlgorithms(),
		RevocationAuthSigningAlgs:         s.ClientAssertionAlgorithms(),
		IntrospectionAuthSigningAlgs:      s.ClientAssertionAlgorithms(),
		CodeChallengeMethodsSupported:     []string{PKCEMethodS256},
		DPoPSigningAlgValuesSupported:     s.verifier.Algorithms(),
		AuthorizationResponseISSSupported: true,
	}
	if s.cfg.Authenticate == nil {
		m.AuthorizationEndpoint, m.ResponseModesSupported, m.CodeChallengeMethodsSupported = "", nil, nil
		m.ResponseTypesSupported, m.GrantTypesSupported = []string{}, []string{GrantClientCredentials}
		m.AuthorizationResponseISSSupported = false
	}
	if s.cfg.AccessTokenFormat == FormatJWT {
		m.JWKSURI = s.origin + s.mounted.JWKS
	}
	if s.parOffered() {
		m.PushedAuthorizationEndpoint = s.origin + s.mounted.PushedAuthorization
		m.RequirePushedAuthorization = s.cfg.RequirePAR
	}
	body, err := json.Marshal(m)
	if err != nil {
		// Strings, slices of strings and a bool always marshal.
		panic("handlers: metadata: " + err.Error())
	}
	return staticDocument("application/json", body)
}

// staticDocument answers GET and HEAD with a fixed body that public caches
// may keep for discoveryMaxAge, and 405 to other methods.
func staticDocument(contentType string, body []byte) http.Handler {
	length := strconv.Itoa(len(body))
	cacheControl := "public, max-age=" + strconv.Itoa(discoveryMaxAge)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			writeError(w, oauthError(http.StatusMethodNotAllowed, dpop.CodeInvalidRequest, "the endpoint accepts GET and HEAD only", ErrMethod))
			return
		}
		h.Set("Content-Type", contentType)
		h.Set("Content-Length", length)
		h.Set("Cache-Control", cacheControl)
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	})
}
