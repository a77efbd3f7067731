package middleware

import (
	"github.com/dpopkit/dpop"

	"crypto/subtle"
	"net/http"
	"strings"
)

// RequireScope returns a middleware, placed after the one New returns, that
// answers 403 insufficient_scope (RFC 6750 §3.1) unless the request's
// principal holds every one of scopes. Without a principal (a route not
// behind New's middleware) it refuses with 401.
func RequireScope(scopes ...string) func(http.Handler) http.Handler {
	need := strings.Join(scopes, " ")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := PrincipalFrom(r.Context())
			st, _ := r.Context().Value(settingsKey{}).(*settings)
			if !ok || st == nil {
				WriteError(w, r, &Error{Status: http.StatusUnauthorized, Description: "an access token is required", Challenge: "DPoP", Err: ErrNoCredentials})
				return
			}
			for _, s := range scopes {
				if !p.HasScope(s) {
					const desc = "the token lacks a required scope"
					st.onError(w, r, &Error{Status: http.StatusForbidden, Code: dpop.CodeInsufficientScope, Description: desc, Err: ErrInsufficientScope,
						Challenge: challenge("DPoP", "realm", st.realm, "algs", st.algs, "error", string(dpop.CodeInsufficientScope), "error_description", desc, "scope", need)})
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// equalConstantTime compares two strings in time that depends only on their
// lengths.
func equalConstantTime(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
