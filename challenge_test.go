package dpop

import (
	"reflect"
	"testing"
)

// parseChallenges on well-formed and malformed WWW-Authenticate values: a
// token68 is only allowed right after a scheme (so it never becomes a
// challenge of its own, nor a parameter of the next), a scheme is a token,
// and parsing stops at the first syntax error, keeping what was read before
// it (RFC 9110 §11.6.1, §5.6.4).
func TestParseChallenges(t *testing.T) {
	ch := func(scheme string, kv ...string) authChallenge {
		c := authChallenge{scheme: scheme, params: map[string]string{}}
		for i := 0; i < len(kv); i += 2 {
			c.params[kv[i]] = kv[i+1]
		}
		return c
	}
	tests := []struct {
		name  string
		field string
		want  []authChallenge
	}{
		{"token68 after a scheme", `Basic abc, DPoP`,
			[]authChallenge{ch("Basic"), ch("DPoP")}},
		{"a token68 is not a scheme", `Negotiate DPoP error="use_dpop_nonce"`,
			[]authChallenge{ch("Negotiate", "error", "use_dpop_nonce")}},
		{"padded token68 after a scheme", `Basic a/b+c==, DPoP`,
			[]authChallenge{ch("Basic"), ch("DPoP")}},
		{"padded token68 without a scheme", `abc==, DPoP`, nil},
		{"padded token68 after a parameter", `DPoP realm="x", abc=, Basic`,
			[]authChallenge{ch("DPoP", "realm", "x")}},
		{"scheme with a slash", `a/b, DPoP`, nil},
		{"slash word after a challenge", `Basic, a/b, DPoP`,
			[]authChallenge{ch("Basic")}},
		{"unterminated quoted value", `DPoP realm="a", error="use_dpop_nonce`,
			[]authChallenge{ch("DPoP", "realm", "a")}},
		{"truncated repeat of a parameter", `DPoP error="use_dpop_nonce", error="x`,
			[]authChallenge{ch("DPoP", "error", "use_dpop_nonce")}},
		{"empty token value", `DPoP realm=a, error=@, Basic`,
			[]authChallenge{ch("DPoP", "realm", "a")}},
		{"backslash at the end", `DPoP a="x\`,
			[]authChallenge{ch("DPoP")}},
		{"quoted pair", `DPoP a="q\"b\\c", b=t`,
			[]authChallenge{ch("DPoP", "a", `q"b\c`, "b", "t")}},
		{"tab in a quoted string", "DPoP a=\"x\ty\", Basic",
			[]authChallenge{ch("DPoP", "a", "x\ty"), ch("Basic")}},
		{"escaped tab", "DPoP a=\"x\\\ty\"",
			[]authChallenge{ch("DPoP", "a", "x\ty")}},
		{"control character in a quoted string", "DPoP b=1, a=\"x\x01y\", Basic",
			[]authChallenge{ch("DPoP", "b", "1")}},
		{"escaped control character", "DPoP a=\"x\\\x1fy\", Basic",
			[]authChallenge{ch("DPoP")}},
		{"newline in a quoted string", "DPoP a=\"x\ny\", Basic",
			[]authChallenge{ch("DPoP")}},
		{"DEL in a quoted string", "DPoP a=\"x\x7fy\", Basic",
			[]authChallenge{ch("DPoP")}},
		{"escaped DEL", "DPoP a=\"x\\\x7fy\", Basic",
			[]authChallenge{ch("DPoP")}},
		{"high bytes in a quoted string", "DPoP a=\"\xc3\xa9\", Basic",
			[]authChallenge{ch("DPoP", "a", "\xc3\xa9"), ch("Basic")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseChallenges(tc.field); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseChallenges(%q)\n got %+v\nwant %+v", tc.field, got, tc.want)
			}
		})
	}
}

// What the client Transport sees of the cases above: a DPoP word in a
// token68 position, or after a syntax error, is no use_dpop_nonce
// challenge.
func TestHasUseNonceChallengeMalformed(t *testing.T) {
	for _, tc := range []struct {
		field string
		want  bool
	}{
		{`Negotiate DPoP error="use_dpop_nonce"`, false},
		{`abc==, DPoP error="use_dpop_nonce"`, false},
		{`DPoP realm="a", abc=, DPoP error="use_dpop_nonce"`, false},
		{`a/b, DPoP error="use_dpop_nonce"`, false},
		{"DPoP a=\"\x01\", DPoP error=\"use_dpop_nonce\"", false},
		{"DPoP a=\"\x7f\", DPoP error=\"use_dpop_nonce\"", false},
		{"DPoP a=\"\t\", error=\"use_dpop_nonce\"", true},
		{`Basic abc, DPoP error="use_dpop_nonce"`, true},
	} {
		if got := hasUseNonceChallenge([]string{tc.field}); got != tc.want {
			t.Errorf("hasUseNonceChallenge(%q) = %v, want %v", tc.field, got, tc.want)
		}
	}
}
