package dpop

import (
	"strings"
	"testing"
)

// FuzzParseChallenges: WWW-Authenticate comes from the network (a server the
// client talks to may be hostile). No panic, and the parse is bounded by the
// input: never more challenges than the input has bytes, and every scheme
// and parameter value is made of the input's bytes.
func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{
		`DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`,
		`Bearer realm="x", DPoP algs="ES256 PS256" error="invalid_token"`,
		`Basic abc==, DPoP error=use_dpop_nonce`,
		`DPoP error="a\"b", error="use_dpop_nonce"`,
		`, ,DPoP`, `=`, `"`, `DPoP error="`, "DPoP error=\"\x00\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cs := parseChallenges(s)
		if len(cs) > len(s) {
			t.Fatalf("%d challenges from %d bytes", len(cs), len(s))
		}
		for _, c := range cs {
			if c.scheme == "" || !strings.Contains(s, c.scheme) {
				t.Fatalf("scheme %q not in input", c.scheme)
			}
			for _, v := range c.params {
				if len(v) > len(s) {
					t.Fatalf("value longer than input")
				}
			}
		}
		hasUseNonceChallenge([]string{s})
	})
}
