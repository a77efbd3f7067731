package handlers

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// code_challenge and dpop_jkt are exactly 43 base64url characters. Go's
// base64 decoder skips CR and LF, so a value with a line break can decode
// to a hash of the right size, or 43 characters to the wrong size; both
// are refused (invalid_request back to the client, no code issued).
func TestAuthorizeHashParamsWithLineBreaks(t *testing.T) {
	short := sha256.Sum256([]byte("31 bytes"))
	hash31 := base64.RawURLEncoding.EncodeToString(short[:31]) // 42 characters
	bad := map[string]string{
		"trailing LF":                   authzChallenge + "\n",
		"trailing CRLF":                 authzChallenge + "\r\n",
		"LF inside":                     authzChallenge[:20] + "\n" + authzChallenge[20:],
		"leading CR":                    "\r" + authzChallenge,
		"43 characters, 31 bytes":       hash31 + "\n",
		"43 characters, 31 bytes, CR":   "\r" + hash31,
		"43 characters, 31 bytes, LF 1": hash31[:1] + "\n" + hash31[1:],
	}
	for name, v := range bad {
		for _, tc := range []struct {
			param  string
			params url.Values
			target string
		}{
			{"code_challenge", authzParams("response_type", "code", "client_id", confID, "redirect_uri", redirectURI, "state", "s",
				"code_challenge", v, "code_challenge_method", PKCEMethodS256), redirectURI},
			{"dpop_jkt", authzParams("response_type", "code", "client_id", pubID, "redirect_uri", authzLoopbackCB, "state", "s",
				"code_challenge", authzChallenge, "code_challenge_method", PKCEMethodS256, "dpop_jkt", v), authzLoopbackCB},
		} {
			t.Run(tc.param+" "+name, func(t *testing.T) {
				h, st := newAuthzHarness(t, nil)
				r := h.authzRequest(http.MethodGet, tc.params, "", "", authzAlice)
				if r.status != http.StatusFound {
					t.Fatalf("status %d, want 302; body %q", r.status, r.raw)
				}
				checkAuthorizeLocation(t, h, r.header.Get("Location"), tc.target, errQuery(dpop.CodeInvalidRequest, "s"))
				if n := st.savedCodes(); n != 0 {
					t.Fatalf("%d codes issued", n)
				}
			})
		}
	}
}

// A code_verifier is 43 to 128 characters of [A-Za-z0-9-._~] (RFC 7636
// §4.1). One with any other character is refused (invalid_grant) even
// when it hashes to the code's challenge.
func TestTokenCodeVerifierCharacters(t *testing.T) {
	h := newHarness(t, nil)
	redeem := func(t *testing.T, verifier string) response {
		t.Helper()
		code := h.saveCode(pubID, func(c *store.AuthorizationCode) { c.CodeChallenge = S256Challenge(verifier) })
		f := codeForm(code)
		f.Set("code_verifier", verifier)
		return h.publicTokenRequest(f, h.signer)
	}
	pad := strings.Repeat("a", 21)
	for name, c := range map[string]string{
		"backquote (before a)":   "`",
		"left brace (after z)":   "{",
		"at sign (before A)":     "@",
		"left bracket (after Z)": "[",
		"slash (before 0)":       "/",
		"colon (after 9)":        ":",
		"plus":                   "+",
		"equals":                 "=",
		"space":                  " ",
		"percent":                "%",
		"comma (before -)":       ",",
		"DEL (after ~)":          "\x7f",
		"NUL":                    "\x00",
		"non-ASCII e acute":      "\u00e9",
		"line feed":              "\n",
		"caret":                  "^",
	} {
		t.Run(name, func(t *testing.T) {
			r := redeem(t, pad+c+pad)
			wantError(t, r, http.StatusBadRequest, dpop.CodeInvalidGrant)
			wantDescription(t, r, "PKCE verification failed")
		})
	}
	for name, v := range map[string]string{
		"every class, 43":       "az-AZ.09_~" + strings.Repeat("xY7", 11),
		"unreserved marks only": strings.Repeat("-._~", 11),
		"128 characters":        strings.Repeat("Zz9~", 32),
	} {
		t.Run("allowed "+name, func(t *testing.T) {
			wantToken(t, redeem(t, v), TokenTypeDPoP)
		})
	}
}
