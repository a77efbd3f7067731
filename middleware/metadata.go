package middleware

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/dpopkit/dpop"
)

// ResourceMetadata is the protected resource metadata of RFC 9728 §2.
type ResourceMetadata struct {
	// Resource is the resource identifier, the API's URL. Required.
	Resource string `json:"resource"`
	// AuthorizationServers are the issuers that grant tokens for it.
	AuthorizationServers []string `json:"authorization_servers,omitempty"`
	// ScopesSupported are the scopes the resource understands.
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// DPoPSigningAlgs is dpop_signing_alg_values_supported (RFC 9728
	// §2): default dpop.DefaultAlgorithms, which is also the middleware's
	// default.
	DPoPSigningAlgs []string `json:"dpop_signing_alg_values_supported"`
	// DPoPBoundTokensRequired is dpop_bound_access_tokens_required. Set it
	// to true unless the middleware was built with AllowBearer.
	DPoPBoundTokensRequired bool `json:"dpop_bound_access_tokens_required"`
	// BearerMethods is bearer_methods_supported: the header only.
	BearerMethods []string `json:"bearer_methods_supported"`
}

// MetadataHandler serves m as JSON (RFC 9728 §3), for GET and HEAD.
func MetadataHandler(m ResourceMetadata) (http.Handler, error) {
	if _, err := url.Parse(m.Resource); err != nil || !strings.HasPrefix(m.Resource, "http") {
		return nil, errors.New("middleware: ResourceMetadata.Resource must be the API's absolute URL")
	}
	if len(m.DPoPSigningAlgs) == 0 {
		m.DPoPSigningAlgs = dpop.DefaultAlgorithms()
	}
	m.BearerMethods = []string{"header"}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(body)
	}), nil
}

// MetadataPath returns where RFC 9728 §3.1 puts the metadata of a resource:
// /.well-known/oauth-protected-resource followed by the resource's path, if
// any.
func MetadataPath(resource string) string {
	u, err := url.Parse(resource)
	if err != nil {
		return "/.well-known/oauth-protected-resource"
	}
	return "/.well-known/oauth-protected-resource" + strings.TrimSuffix(u.EscapedPath(), "/")
}
