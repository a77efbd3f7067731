package dpop

import (
	"errors"
	"testing"
)

// Edges of NormalizeHTU that the main table (htu_test.go) leaves open: the
// scheme's character classes, where an invalid scheme and a valid scheme
// other than http(s) get different errors, and ports whose digits would
// overflow an int into the valid range.

func TestNormalizeHTUSchemeCharacters(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		// ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ): a valid scheme, just
		// not http or https.
		{"h2://example.com/", errHTUScheme},
		{"http2://example.com/", errHTUScheme},
		{"https0://example.com/", errHTUScheme},
		{"h9://example.com/", errHTUScheme},
		{"svn+ssh://example.com/", errHTUScheme},
		{"http+unix://example.com/", errHTUScheme},
		{"x-http://example.com/", errHTUScheme},
		{"web.https://example.com/", errHTUScheme},
		{"a1+-.://example.com/", errHTUScheme},

		// The first character must be a letter.
		{"2http://example.com/", errHTUNoScheme},
		{"0://example.com/", errHTUNoScheme},
		{"+http://example.com/", errHTUNoScheme},
		{"-http://example.com/", errHTUNoScheme},
		{".http://example.com/", errHTUNoScheme},

		// Characters next to the allowed ones in ASCII ("/" and ":" border
		// the digits, "*" and "," the "+", "_" is unreserved elsewhere).
		{"h/x://example.com/", errHTUNoScheme},
		{"h*x://example.com/", errHTUNoScheme},
		{"h,x://example.com/", errHTUNoScheme},
		{"h!x://example.com/", errHTUNoScheme},
		{"h x://example.com/", errHTUNoScheme},
		{"h;x://example.com/", errHTUNoScheme},
		{"h@x://example.com/", errHTUNoScheme},
		{"h_x://example.com/", errHTUNoScheme},
		{"h~x://example.com/", errHTUNoScheme},
		{"h%2Bx://example.com/", errHTUNoScheme},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeHTU(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("NormalizeHTU(%q) = %q, %v; want error %v", tc.in, got, err, tc.want)
			}
		})
	}
}

// A port of more than five significant digits is out of range, even when
// its value modulo 2^64 (what an int accumulating it would hold) is a valid
// port, 0, a default port, or negative.
func TestNormalizeHTUPortOverflow(t *testing.T) {
	for _, port := range []string{
		"18446744073709551616", // 2^64: wraps to 0
		"18446744073709551696", // 2^64 + 80
		"18446744073709552059", // 2^64 + 443
		"18446744073709559616", // 2^64 + 8000
		"9223372036854775808",  // 2^63: wraps to a negative int
		"18446744073709551615", // 2^64 - 1: wraps to -1
		"36893488147419103675", // 2^65 + 443
		"0018446744073709552059",
		"123456",
	} {
		for _, scheme := range []string{"http", "https"} {
			in := scheme + "://example.com:" + port + "/a"
			t.Run(in, func(t *testing.T) {
				if got, err := NormalizeHTU(in); !errors.Is(err, errHTUPortRange) {
					t.Fatalf("NormalizeHTU(%q) = %q, %v; want %v", in, got, err, errHTUPortRange)
				}
				if EqualHTU(in, scheme+"://example.com/a") {
					t.Fatalf("%q is equal to the URL without a port", in)
				}
			})
		}
	}
	// The bound is on significant digits: leading zeros do not count.
	for _, tc := range []struct{ in, want string }{
		{"https://example.com:000000000000000000000000008443/a", "https://example.com:8443/a"},
		{"https://example.com:0000000000000000000000065535/a", "https://example.com:65535/a"},
	} {
		if got, err := NormalizeHTU(tc.in); err != nil || got != tc.want {
			t.Errorf("NormalizeHTU(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// The verifier refuses an htu whose port only matches the request URL's
// default port modulo 2^64.
func TestVerifyHTUPortOverflow(t *testing.T) {
	v := newTestVerifier(t, nil)
	es := newTestKey(t, ES256)
	p, err := v.Verify(bg, tokenRequest(es.proof(t, func(c map[string]any) {
		c["htu"] = "https://server.example.com:18446744073709552059/token"
	})))
	wantDescribed(t, p, err, CodeInvalidProof, ErrHTU, "htu is not an absolute http(s) URI")
}

// The longest IPv6 literal without a zone is 45 bytes; one byte more is
// never an address.
func TestNormalizeHTUIPv6LiteralLength(t *testing.T) {
	const longest = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
	if len(longest) != 45 {
		t.Fatalf("len %d", len(longest))
	}
	if got, err := NormalizeHTU("http://[" + longest + "]/"); err != nil || got != "http://["+longest+"]/" {
		t.Fatalf("longest literal: %q, %v", got, err)
	}
	if got, err := NormalizeHTU("http://[FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:255.255.255.255]:8080"); err != nil ||
		got != "http://["+longest+"]:8080/" {
		t.Fatalf("longest literal, upper case: %q, %v", got, err)
	}
	for _, lit := range []string{
		"0ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
		"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.0255",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff",
	} {
		if got, err := NormalizeHTU("http://[" + lit + "]/"); !errors.Is(err, errHTUIPv6) {
			t.Errorf("%d-byte literal %q: %q, %v", len(lit), lit, got, err)
		}
	}
}
