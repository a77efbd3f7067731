package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// PKCE (RFC 7636) and dpop_jkt (RFC 9449 §10) parameter checks.

// PKCEMethodS256 is the only code challenge method accepted: "plain" gives no
// protection against a stolen code and is refused (RFC 9700 §2.1.1).
const PKCEMethodS256 = "S256"

// isBase64URLHash reports whether s is the unpadded base64url encoding of a
// SHA-256 hash (43 characters): an S256 code_challenge or a JWK thumbprint.
func isBase64URLHash(s string) bool {
	if len(s) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// validCodeVerifier checks the syntax of a code_verifier (RFC 7636 §4.1):
// 43 to 128 unreserved characters.
func validCodeVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0) {
			return false
		}
	}
	return true
}

// pkceMatches reports, in constant time, whether verifier hashes to the S256
// challenge (RFC 7636 §4.6).
func pkceMatches(verifier, challenge string) bool {
	return subtle.ConstantTimeCompare([]byte(S256Challenge(verifier)), []byte(challenge)) == 1
}

// S256Challenge returns the S256 code_challenge of a code_verifier
// (RFC 7636 §4.2), for clients and tests.
func S256Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// parseScope splits a scope parameter (RFC 6749 §3.3): scope tokens of
// %x21 / %x23-5B / %x5D-7E separated by spaces (extra spaces are ignored). It
// returns nil for a parameter without tokens, which counts as absent, and
// false for one with any other character (a tab, a quote, a backslash,
// non-ASCII), which is malformed. The middleware splits a token's scope the
// same way.
func parseScope(v string) ([]string, bool) {
	var out []string
	for _, tok := range strings.Split(v, " ") {
		if tok == "" {
			continue
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return nil, false
			}
		}
		out = append(out, tok)
	}
	return out, true
}
