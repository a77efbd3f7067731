package dpop

import (
	"errors"
	"strings"
	"testing"
)

// htuCase is one row of the NormalizeHTU table. An empty want means the input
// must be refused; err, when set, is the expected cause.
type htuCase struct {
	name string
	in   string
	want string
	err  error
}

var htuCases = []htuCase{
	// RFC 9449 examples (§4.1, §4.2, §7.1).
	{"rfc9449 token endpoint", "https://server.example.com/token", "https://server.example.com/token", nil},
	{"rfc9449 resource", "https://resource.example.org/protectedresource", "https://resource.example.org/protectedresource", nil},

	// Scheme and host case.
	{"upper scheme", "HTTPS://server.example.com/token", "https://server.example.com/token", nil},
	{"mixed scheme http", "hTtP://example.com/", "http://example.com/", nil},
	{"upper host", "https://Server.Example.COM/token", "https://server.example.com/token", nil},
	{"path case kept", "https://example.com/Token/ABC", "https://example.com/Token/ABC", nil},
	{"ipv4 host", "http://192.0.2.1:8080/x", "http://192.0.2.1:8080/x", nil},
	{"host sub-delims", "http://a!$&'()*+,;=b/", "http://a!$&'()*+,;=b/", nil},
	{"host trailing dot kept", "http://example.com./", "http://example.com./", nil},
	{"host pct unreserved", "http://ex%41mple.com/", "http://example.com/", nil},
	{"host pct reserved upper", "http://ex%c3%a9.com/", "http://ex%C3%A9.com/", nil},

	// Ports.
	{"http default port", "http://example.com:80/a", "http://example.com/a", nil},
	{"https default port", "https://example.com:443/a", "https://example.com/a", nil},
	{"https port 80 kept", "https://example.com:80/a", "https://example.com:80/a", nil},
	{"http port 443 kept", "http://example.com:443/a", "http://example.com:443/a", nil},
	{"other port kept", "https://example.com:8443/a", "https://example.com:8443/a", nil},
	{"empty port", "https://example.com:/a", "https://example.com/a", nil},
	{"empty port no path", "http://example.com:", "http://example.com/", nil},
	{"leading zeros", "https://example.com:008443/a", "https://example.com:8443/a", nil},
	{"leading zeros default", "https://example.com:00000000000443/a", "https://example.com/a", nil},
	{"port zero", "http://example.com:0/", "http://example.com:0/", nil},
	{"port zeros", "http://example.com:000/", "http://example.com:0/", nil},
	{"port max", "http://example.com:65535/", "http://example.com:65535/", nil},
	{"port overflow", "http://example.com:65536/", "", errHTUPortRange},
	{"port six digits", "http://example.com:100000/", "", errHTUPortRange},
	{"port huge", "http://example.com:99999999999999999999999/", "", errHTUPortRange},
	{"port sign", "http://example.com:+80/", "", errHTUPort},
	{"port minus", "http://example.com:-1/", "", errHTUPort},
	{"port letters", "http://example.com:8o/", "", errHTUPort},
	{"port space", "http://example.com: 80/", "", errHTUPort},
	{"two colons", "http://example.com:80:80/", "", errHTUPort},
	{"port fullwidth digit", "http://example.com:８０/", "", errHTUPort},

	// Percent-encoding.
	{"pct tilde", "https://example.com/%7euser", "https://example.com/~user", nil},
	{"pct tilde upper", "https://example.com/%7Euser", "https://example.com/~user", nil},
	{"pct letters digits", "https://example.com/%41%62%30%2D%2e%5F", "https://example.com/Ab0-._", nil},
	{"pct slash stays", "https://example.com/a%2fb", "https://example.com/a%2Fb", nil},
	{"pct aa", "https://example.com/%aa", "https://example.com/%AA", nil},
	{"pct mixed case", "https://example.com/%aA%Bb", "https://example.com/%AA%BB", nil},
	{"pct space", "https://example.com/a%20b", "https://example.com/a%20b", nil},
	{"pct percent", "https://example.com/100%25", "https://example.com/100%25", nil},
	{"pct nul", "https://example.com/%00", "https://example.com/%00", nil},
	{"pct utf8", "https://example.com/%e2%82%ac", "https://example.com/%E2%82%AC", nil},
	{"pct sub-delim stays", "https://example.com/%3b%3D", "https://example.com/%3B%3D", nil},
	{"pct truncated", "https://example.com/a%", "", errHTUPercent},
	{"pct truncated one", "https://example.com/a%4", "", errHTUPercent},
	{"pct before query", "https://example.com/a%4?1", "", errHTUPercent},
	{"pct not hex", "https://example.com/%zz", "", errHTUPercent},
	{"pct half hex", "https://example.com/%4g", "", errHTUPercent},
	{"pct double", "https://example.com/%%41", "", errHTUPercent},
	{"pct host bad", "https://exa%2.com/", "", errHTUPercent},
	{"pct userinfo", "https://%75ser:p%3a@example.com/", "https://user:p%3A@example.com/", nil},

	// Dot segments: RFC 3986 §5.4.1 and §5.4.2 with the merged base path
	// "/b/c/" written out, so that every input is absolute.
	{"5.4 g", "http://a/b/c/g", "http://a/b/c/g", nil},
	{"5.4 ./g", "http://a/b/c/./g", "http://a/b/c/g", nil},
	{"5.4 g/", "http://a/b/c/g/", "http://a/b/c/g/", nil},
	{"5.4 ;x", "http://a/b/c/;x", "http://a/b/c/;x", nil},
	{"5.4 g;x", "http://a/b/c/g;x", "http://a/b/c/g;x", nil},
	{"5.4 .", "http://a/b/c/.", "http://a/b/c/", nil},
	{"5.4 ./", "http://a/b/c/./", "http://a/b/c/", nil},
	{"5.4 ..", "http://a/b/c/..", "http://a/b/", nil},
	{"5.4 ../", "http://a/b/c/../", "http://a/b/", nil},
	{"5.4 ../g", "http://a/b/c/../g", "http://a/b/g", nil},
	{"5.4 ../..", "http://a/b/c/../..", "http://a/", nil},
	{"5.4 ../../", "http://a/b/c/../../", "http://a/", nil},
	{"5.4 ../../g", "http://a/b/c/../../g", "http://a/g", nil},
	{"5.4 ../../../g", "http://a/b/c/../../../g", "http://a/g", nil},
	{"5.4 ../../../../g", "http://a/b/c/../../../../g", "http://a/g", nil},
	{"5.4 /./g", "http://a/./g", "http://a/g", nil},
	{"5.4 /../g", "http://a/../g", "http://a/g", nil},
	{"5.4 g.", "http://a/b/c/g.", "http://a/b/c/g.", nil},
	{"5.4 .g", "http://a/b/c/.g", "http://a/b/c/.g", nil},
	{"5.4 g..", "http://a/b/c/g..", "http://a/b/c/g..", nil},
	{"5.4 ..g", "http://a/b/c/..g", "http://a/b/c/..g", nil},
	{"5.4 ./../g", "http://a/b/c/./../g", "http://a/b/g", nil},
	{"5.4 ./g/.", "http://a/b/c/./g/.", "http://a/b/c/g/", nil},
	{"5.4 g/./h", "http://a/b/c/g/./h", "http://a/b/c/g/h", nil},
	{"5.4 g/../h", "http://a/b/c/g/../h", "http://a/b/c/h", nil},
	{"5.4 g;x=1/./y", "http://a/b/c/g;x=1/./y", "http://a/b/c/g;x=1/y", nil},
	{"5.4 g;x=1/../y", "http://a/b/c/g;x=1/../y", "http://a/b/c/y", nil},
	{"5.2.4 example 1", "http://a/a/b/c/./../../g", "http://a/a/g", nil},
	{"5.2.4 example 2", "http://a/mid/content=5/../6", "http://a/mid/6", nil},
	{"dots only", "http://a/..", "http://a/", nil},
	{"dot only", "http://a/.", "http://a/", nil},
	{"many up", "http://a/../../..", "http://a/", nil},
	{"trailing ..", "https://example.com/a/b/..", "https://example.com/a/", nil},
	{"empty segments kept", "http://a/b//c", "http://a/b//c", nil},
	{"empty segment and ..", "http://a/b//..", "http://a/b/", nil},
	{"double slash ..", "http://a//..", "http://a/", nil},
	{"three dots", "http://a/b/...", "http://a/b/...", nil},
	{"encoded dots", "http://a/b/%2e%2E/c", "http://a/c", nil},
	{"encoded dot", "http://a/b/%2E/c", "http://a/b/c", nil},
	{"half encoded dots", "http://a/b/.%2e", "http://a/", nil},
	{"encoded slash not a separator", "http://a/b%2F..%2Fc", "http://a/b%2F..%2Fc", nil},

	// Query and fragment.
	{"query dropped", "https://example.com/a?b=c", "https://example.com/a", nil},
	{"fragment dropped", "https://example.com/a#frag", "https://example.com/a", nil},
	{"both dropped", "https://example.com/a?b#c", "https://example.com/a", nil},
	{"fragment before query", "https://example.com/a#c?b", "https://example.com/a", nil},
	{"query on host", "https://example.com?x", "https://example.com/", nil},
	{"fragment on port", "https://example.com:443#x", "https://example.com/", nil},
	{"junk in query ignored", "https://example.com/a?\x00 <>\"\\ é", "https://example.com/a", nil},
	{"empty query", "https://example.com/a?", "https://example.com/a", nil},
	{"query hides bad authority", "https://?@example.com/", "", errHTUNoHost},

	// Empty path.
	{"empty path", "https://example.com", "https://example.com/", nil},
	{"empty path port", "https://example.com:8443", "https://example.com:8443/", nil},

	// Userinfo.
	{"userinfo", "https://user:pass@example.com/", "https://user:pass@example.com/", nil},
	{"userinfo case kept", "https://User@Example.com/", "https://User@example.com/", nil},
	{"userinfo empty", "https://@example.com/", "https://@example.com/", nil},
	{"userinfo sub-delims", "https://a!$&'()*+,;=:b@h/", "https://a!$&'()*+,;=:b@h/", nil},
	{"userinfo no host", "https://user@/", "", errHTUNoHost},
	{"userinfo no host port", "https://user@:443/", "", errHTUNoHost},
	{"two at signs", "https://a@b@example.com/", "", errHTUHost},
	{"userinfo bad char", "https://us er@example.com/", "", errHTUUserinfo},
	{"userinfo bracket", "https://u[@example.com/", "", errHTUUserinfo},

	// IPv6 literals.
	{"ipv6 loopback", "http://[::1]/", "http://[::1]/", nil},
	{"ipv6 port", "http://[::1]:8080/a", "http://[::1]:8080/a", nil},
	{"ipv6 default port", "https://[2001:DB8::1]:443", "https://[2001:db8::1]/", nil},
	{"ipv6 upper", "http://[2001:DB8:0:0:0:0:0:ABCD]/", "http://[2001:db8:0:0:0:0:0:abcd]/", nil},
	{"ipv6 v4 mapped", "http://[::FFFF:192.0.2.1]/", "http://[::ffff:192.0.2.1]/", nil},
	{"ipv6 empty port", "http://[::1]:/", "http://[::1]/", nil},
	{"ipv6 userinfo", "http://u@[::1]/", "http://u@[::1]/", nil},
	{"ipv6 empty", "http://[]/", "", errHTUIPv6},
	{"ipv6 unclosed", "http://[::1/", "", errHTUIPv6},
	{"ipv6 bad char", "http://[::g]/", "", errHTUIPv6},
	{"ipv6 zone", "http://[fe80::1%25eth0]/", "", errHTUIPv6},
	{"ipv6 future", "http://[v1.fe]/", "", errHTUIPv6},
	{"ipv6 plain ipv4", "http://[192.0.2.1]/", "", errHTUIPv6},
	{"ipv6 not an address", "http://[1:2:3]/", "", errHTUIPv6},
	{"ipv6 too many groups", "http://[1:2:3:4:5:6:7:8:9]/", "", errHTUIPv6},
	{"ipv6 long", "http://[" + strings.Repeat("0", 100) + "::1]/", "", errHTUIPv6},
	{"ipv6 junk after", "http://[::1]x/", "", errHTUHost},
	{"ipv6 junk after port", "http://[::1]:80x/", "", errHTUPort},
	{"ipv6 unbracketed", "http://::1/", "", errHTUNoHost},
	{"bracket in reg-name", "http://a]/", "", errHTUHost},

	// Missing or wrong scheme, relative references.
	{"no scheme", "server.example.com/token", "", errHTUNoScheme},
	{"network-path reference", "//server.example.com/token", "", errHTUNoScheme},
	{"network-path with port", "//server.example.com:443/token", "", errHTUNoScheme},
	{"absolute-path reference", "/token", "", errHTUNoScheme},
	{"relative colon", "/a:b", "", errHTUNoScheme},
	{"empty", "", "", errHTUNoScheme},
	{"empty scheme", "://example.com/", "", errHTUNoScheme},
	{"leading space", " https://example.com/", "", errHTUNoScheme},
	{"colon in query only", "example.com?a:b", "", errHTUNoScheme},
	{"ftp", "ftp://example.com/", "", errHTUScheme},
	{"javascript", "javascript:alert(1)", "", errHTUScheme},
	{"ws", "wss://example.com/", "", errHTUScheme},
	{"httpx", "httpx://example.com/", "", errHTUScheme},
	{"long s", "http\u017f://example.com/", "", errHTUNoScheme},
	{"kelvin", "\u212ahttp://example.com/", "", errHTUNoScheme},
	{"http opaque", "http:foo", "", errHTUNoAuthority},
	{"http one slash", "http:/example.com/", "", errHTUNoAuthority},
	{"backslashes", "https:\\\\example.com/", "", errHTUNoAuthority},
	{"scheme only", "https:", "", errHTUNoAuthority},

	// Missing host.
	{"no host", "https:///token", "", errHTUNoHost},
	{"no host at all", "https://", "", errHTUNoHost},
	{"port only", "https://:443/", "", errHTUNoHost},

	// Illegal characters.
	{"space in path", "https://example.com/a b", "", errHTUPath},
	{"tab in path", "https://example.com/a\tb", "", errHTUPath},
	{"newline in path", "https://example.com/a\nb", "", errHTUPath},
	{"nul in path", "https://example.com/a\x00", "", errHTUPath},
	{"del in path", "https://example.com/a\x7f", "", errHTUPath},
	{"backslash in path", "https://example.com/a\\..\\b", "", errHTUPath},
	{"quote in path", "https://example.com/\"", "", errHTUPath},
	{"angle in path", "https://example.com/<script>", "", errHTUPath},
	{"brace in path", "https://example.com/{x}", "", errHTUPath},
	{"pipe in path", "https://example.com/a|b", "", errHTUPath},
	{"caret in path", "https://example.com/a^b", "", errHTUPath},
	{"backtick in path", "https://example.com/a`b", "", errHTUPath},
	{"bracket in path", "https://example.com/a[0]", "", errHTUPath},
	{"non-ascii in path", "https://example.com/caf\u00e9", "", errHTUPath},
	{"invalid utf8 in path", "https://example.com/\xff", "", errHTUPath},
	{"space in host", "https://exa mple.com/", "", errHTUHost},
	{"non-ascii host", "https://b\u00fccher.example/", "", errHTUHost},
	{"backslash in host", "https://example.com\\@evil.com/", "", errHTUUserinfo},
	{"underscore host ok", "https://my_host/", "https://my_host/", nil},
	{"path pchar ok", "https://example.com/a:b@c!$&'()*+,;=-._~", "https://example.com/a:b@c!$&'()*+,;=-._~", nil},
	{"colon path segment", "https://example.com/:/@/", "https://example.com/:/@/", nil},

	// Length limit.
	{"at limit", "https://example.com/" + strings.Repeat("a", maxHTULength-len("https://example.com/")), "https://example.com/" + strings.Repeat("a", maxHTULength-len("https://example.com/")), nil},
	{"over limit", "https://example.com/" + strings.Repeat("a", maxHTULength-len("https://example.com/")+1), "", errHTUTooLong},
	{"over limit by query", "https://example.com/?" + strings.Repeat("a", maxHTULength), "", errHTUTooLong},
}

func TestNormalizeHTU(t *testing.T) {
	for _, tc := range htuCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeHTU(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("NormalizeHTU(%q) = %q, want an error", tc.in, got)
				}
				if tc.err != nil && !errors.Is(err, tc.err) {
					t.Fatalf("NormalizeHTU(%q) error = %v, want %v", tc.in, err, tc.err)
				}
				if got != "" {
					t.Errorf("NormalizeHTU(%q) returned %q with its error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("NormalizeHTU(%q) error = %v, want %q", tc.in, err, tc.want)
			}
			if got != tc.want {
				t.Fatalf("NormalizeHTU(%q) = %q, want %q", tc.in, got, tc.want)
			}
			again, err := NormalizeHTU(got)
			if err != nil || again != got {
				t.Fatalf("not idempotent: NormalizeHTU(%q) = %q, %v", got, again, err)
			}
		})
	}
}

// TestNormalizeHTUErrorText checks that every refusal names the package and
// the check, and never echoes the hostile input.
func TestNormalizeHTUErrorText(t *testing.T) {
	const marker = "ZQXJMARKER"
	inputs := []string{
		"ftp://" + marker + "/",
		marker + "/path",
		"https://" + marker + " x/",
		"https://" + marker + ":99999/",
		"https://" + marker + "/%zz",
		"https://" + marker + "/<" + marker + ">",
		"https://" + marker + "@/",
		"https://[" + marker + "]/",
		"https://" + marker + "/" + strings.Repeat(marker, maxHTULength/len(marker)),
	}
	for _, in := range inputs {
		_, err := NormalizeHTU(in)
		if err == nil {
			t.Fatalf("NormalizeHTU(%q) succeeded", in)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "dpop: htu: ") {
			t.Errorf("error %q lacks the dpop: htu: prefix", msg)
		}
		if strings.Contains(strings.ToUpper(msg), marker) {
			t.Errorf("error %q repeats the input", msg)
		}
	}
}

func TestEqualHTU(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"HTTPS://Server.Example.COM:443/token?x=1#f", "https://server.example.com/token", true},
		{"https://server.example.com/token", "https://server.example.com/token", true},
		{"https://resource.example.org/protectedresource", "https://resource.example.org:443/protectedresource?a=b", true},
		{"http://example.com", "http://EXAMPLE.com:80/", true},
		{"http://example.com:/", "http://example.com/", true},
		{"https://example.com/%7Euser", "https://example.com/~user", true},
		{"https://example.com/%7euser", "https://example.com/%7Euser", true},
		{"https://example.com/a/./b/../c", "https://example.com/a/c", true},
		{"https://example.com/%aa", "https://example.com/%AA", true},
		{"https://example.com:0443/", "https://example.com/", true},
		{"http://[::1]:80/", "http://[::1]/", true},
		{"http://[2001:DB8::1]/", "http://[2001:db8::1]/", true},

		{"https://server.example.com/token", "http://server.example.com/token", false},
		{"https://server.example.com/token", "https://server.example.com:80/token", false},
		{"http://server.example.com/token", "http://server.example.com:443/token", false},
		{"https://server.example.com/token", "https://server.example.com/Token", false},
		{"https://server.example.com/token", "https://server.example.com/token/", false},
		{"https://server.example.com/token", "https://server.example.org/token", false},
		{"https://server.example.com/token", "https://server.example.com./token", false},
		{"https://server.example.com/a/b", "https://server.example.com/a%2Fb", false},
		{"https://server.example.com/token", "https://user@server.example.com/token", false},
		{"https://server.example.com/token", "https://@server.example.com/token", false},
		{"https://server.example.com//token", "https://server.example.com/token", false},
		{"http://[::1]/", "http://[0:0:0:0:0:0:0:1]/", false},

		// Refused inputs are never equal, not even to themselves.
		{"ftp://example.com/", "ftp://example.com/", false},
		{"https://example.com/a b", "https://example.com/a b", false},
		{"", "", false},
		{"https://example.com/", "", false},
		{"", "https://example.com/", false},
		{"https://example.com:65536/", "https://example.com:65536/", false},
	}
	for _, tc := range tests {
		if got := EqualHTU(tc.a, tc.b); got != tc.want {
			t.Errorf("EqualHTU(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := EqualHTU(tc.b, tc.a); got != tc.want {
			t.Errorf("EqualHTU(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

// TestNormalizeHTULongInputs feeds pathological inputs of the maximum length.
// A quadratic implementation would still pass here, but slowly; the point is
// correctness at the limit, with the fuzz test and benchmark covering cost.
func TestNormalizeHTULongInputs(t *testing.T) {
	fill := func(prefix, unit string) string {
		n := (maxHTULength - len(prefix)) / len(unit)
		return prefix + strings.Repeat(unit, n)
	}
	tests := []struct {
		name, in, want string
	}{
		{"up", fill("http://h", "/.."), "http://h/"},
		{"dot", fill("http://h", "/."), "http://h/"},
		{"encoded up", fill("http://h", "/%2e%2E"), "http://h/"},
		{"down up", fill("http://h", "/a/.."), "http://h/"},
		{"slashes", fill("http://h", "/"), fill("http://h", "/")},
		{"a slash", fill("http://h/", "a/"), fill("http://h/", "a/")},
		{
			"deep then up",
			"http://h/" + strings.Repeat("a/", 1636) + strings.Repeat("../", 1636) + "bcd",
			"http://h/bcd",
		},
		{
			"deep then up but one",
			"http://h/" + strings.Repeat("a/", 1636) + strings.Repeat("../", 1635) + "bcdefg",
			"http://h/a/bcdefg",
		},
		{"pct", fill("http://h/", "%7e"), "http://h/" + strings.Repeat("~", (maxHTULength-len("http://h/"))/3)},
		{"pct upper", fill("http://h/", "%aa"), fill("http://h/", "%AA")},
		{"long host", fill("http://", "A"), fill("http://", "a") + "/"},
		{"long port zeros", fill("http://h:", "0"), "http://h:0/"},
		{"long userinfo", "http://" + strings.Repeat("u", maxHTULength-len("http://@h")) + "@h", "http://" + strings.Repeat("u", maxHTULength-len("http://@h")) + "@h/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.in) > maxHTULength {
				t.Fatalf("test input is %d bytes, over the limit", len(tc.in))
			}
			if len(tc.in) < maxHTULength-8 {
				t.Fatalf("test input is only %d bytes", len(tc.in))
			}
			got, err := NormalizeHTU(tc.in)
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if got != tc.want {
				t.Fatalf("got %d bytes %.40q..., want %d bytes %.40q...", len(got), got, len(tc.want), tc.want)
			}
		})
	}
}

// TestRemoveHTUDotSegments compares the linear, in-place implementation with
// a direct transcription of the RFC 3986 §5.2.4 loop.
func TestRemoveHTUDotSegments(t *testing.T) {
	paths := []string{
		"", "/", "//", "/.", "/..", "/./", "/../", "/a", "/a/", "/a/.", "/a/..",
		"/a/b/c/./../../g", "/mid/content=5/../6", "/a//..", "//..", "/a/b//../..",
		"/...", "/.a", "/a.", "/a/../../b/./c/.", "/./././", "/../../../",
		"/a/b/c/d/../../../../..", "/a/./b/./c/./", "///a///..///b",
	}
	for _, p := range paths {
		want := htuRFCRemoveDotSegments(p)
		got := string(removeHTUDotSegments([]byte(p)))
		if got != want {
			t.Errorf("removeHTUDotSegments(%q) = %q, want %q", p, got, want)
		}
	}
}

// htuRFCRemoveDotSegments is a plain, quadratic rendering of the algorithm
// in RFC 3986 §5.2.4, used as a reference in tests.
func htuRFCRemoveDotSegments(in string) string {
	var out string
	for in != "" {
		switch {
		// A: strip a leading "../" or "./".
		case strings.HasPrefix(in, "../"):
			in = in[3:]
		case strings.HasPrefix(in, "./"):
			in = in[2:]
		// B: "/./" or a final "/." becomes "/".
		case strings.HasPrefix(in, "/./"):
			in = in[2:]
		case in == "/.":
			in = "/"
		// C: "/../" or a final "/.." becomes "/" and pops a segment.
		case strings.HasPrefix(in, "/../") || in == "/..":
			in = "/" + in[min(len(in), 4):]
			if i := strings.LastIndexByte(out, '/'); i >= 0 {
				out = out[:i]
			} else {
				out = ""
			}
		// D: a lone "." or "..".
		case in == "." || in == "..":
			in = ""
		// E: move the first segment, with its leading "/" if any.
		default:
			start := 0
			if in[0] == '/' {
				start = 1
			}
			end := len(in)
			if i := strings.IndexByte(in[start:], '/'); i >= 0 {
				end = start + i
			}
			out += in[:end]
			in = in[end:]
		}
	}
	return out
}

func TestNormalizeHTUAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	for _, in := range []string{
		"https://server.example.com/token",
		"https://server.example.com/token?query=1#f",
		"http://[::1]:8080/a/b",
	} {
		if n := testing.AllocsPerRun(100, func() { _, _ = NormalizeHTU(in) }); n != 0 {
			t.Errorf("NormalizeHTU(%q): %v allocations, want 0 for a normalised input", in, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		_, _ = NormalizeHTU("HTTPS://Server.Example.COM:443/a/./b/../%7etoken")
	}); n > 1 {
		t.Errorf("NormalizeHTU: %v allocations, want at most 1", n)
	}
}
