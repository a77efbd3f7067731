package middleware

import "net/http"

// CORSHeaders are the headers a browser client of a DPoP-protected API needs
// (RFC 9449 §7, §9): it sends Authorization and DPoP, and reads
// WWW-Authenticate and DPoP-Nonce to follow a nonce challenge. Configure a
// CORS library with Allowed = CORSHeaders.Request and Exposed =
// CORSHeaders.Response.
var CORSHeaders = struct{ Request, Response []string }{
	Request:  []string{"Authorization", "DPoP"},
	Response: []string{"WWW-Authenticate", "DPoP-Nonce"},
}

// ExposeDPoPHeaders is a middleware for hosts without a CORS library: on
// every response to a request with an Origin header it adds
// Access-Control-Expose-Headers: WWW-Authenticate, DPoP-Nonce. It does not
// decide which origins are allowed; that stays with the host.
func ExposeDPoPHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" {
			w.Header().Add("Access-Control-Expose-Headers", "WWW-Authenticate, DPoP-Nonce")
			w.Header().Add("Vary", "Origin")
		}
		next.ServeHTTP(w, r)
	})
}
