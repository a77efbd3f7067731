package dpop

import (
	"strings"
	"testing"
)

// FuzzNormalizeHTU checks the properties NormalizeHTU promises on any input:
// no panic, an opaque error or a result that is idempotent, free of query and
// fragment, http or https, made of URI characters only and of bounded length.
// It also checks the linear dot-segment removal against the RFC 3986 §5.2.4
// reference loop on the same bytes.
func FuzzNormalizeHTU(f *testing.F) {
	for _, tc := range htuCases {
		if len(tc.in) <= 512 {
			f.Add(tc.in)
		}
	}
	for _, s := range []string{
		"HTTPS://Server.Example.COM:443/token?x=1#f",
		"http://a/b/c/./../../g",
		"http://[::FFFF:192.0.2.1]:0080/%2e%2E/%7e/%aa",
		"https://u%3a:p@h:/a//../b/.",
		"http://h/" + strings.Repeat("a/", 40) + strings.Repeat("../", 41),
	} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeHTU(in)
		if err != nil {
			if out != "" {
				t.Fatalf("result %q returned with error %v", out, err)
			}
			if !strings.HasPrefix(err.Error(), "dpop: htu: ") {
				t.Fatalf("error %q lacks the prefix", err)
			}
			if EqualHTU(in, in) {
				t.Fatalf("EqualHTU accepts an input NormalizeHTU refuses")
			}
		} else {
			if !strings.HasPrefix(out, "http://") && !strings.HasPrefix(out, "https://") {
				t.Fatalf("result %q is not http or https", out)
			}
			if strings.ContainsAny(out, "?#") {
				t.Fatalf("result %q has a query or fragment", out)
			}
			// The specified bound is 3*len+1; in fact the result is never
			// longer than the input plus the "/" of an empty path.
			if len(out) > 3*len(in)+1 || len(out) > len(in)+1 {
				t.Fatalf("result is %d bytes for %d bytes of input", len(out), len(in))
			}
			for i := 0; i < len(out); i++ {
				if c := out[i]; c != '%' && c != '[' && c != ']' && htuClass[c] == 0 {
					t.Fatalf("result %q has byte %#x", out, c)
				}
			}
			again, err := NormalizeHTU(out)
			if err != nil {
				t.Fatalf("NormalizeHTU(%q) = %q, but normalising that fails: %v", in, out, err)
			}
			if again != out {
				t.Fatalf("not idempotent: %q -> %q -> %q", in, out, again)
			}
			if !EqualHTU(in, out) {
				t.Fatalf("EqualHTU(%q, %q) is false", in, out)
			}
			if len(in) < maxHTULength {
				if withFrag, err := NormalizeHTU(in + "#"); err != nil || withFrag != out {
					t.Fatalf("adding a fragment changed the result: %q, %v", withFrag, err)
				}
			}
		}

		if len(in) <= 1024 {
			p := "/" + in
			want := htuRFCRemoveDotSegments(p)
			if got := string(removeHTUDotSegments([]byte(p))); got != want {
				t.Fatalf("removeHTUDotSegments(%q) = %q, want %q", p, got, want)
			}
		}
	})
}

func BenchmarkNormalizeHTU(b *testing.B) {
	inputs := []struct{ name, in string }{
		{"normal", "https://server.example.com/token"},
		{"normal_query", "https://resource.example.org/protectedresource?a=1&b=2#frag"},
		{"rewrite", "HTTPS://Server.Example.COM:443/a/./b/../%7etoken"},
		{"ipv6", "http://[2001:DB8::1]:8080/path/to/x"},
		{"max_dots", "http://h" + strings.Repeat("/..", (maxHTULength-len("http://h"))/3)},
		{"max_normal", "http://h/" + strings.Repeat("a/", (maxHTULength-len("http://h/"))/2)},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.in)))
			for b.Loop() {
				if _, err := NormalizeHTU(in.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("equal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !EqualHTU("HTTPS://Server.Example.COM:443/token?x=1#f", "https://server.example.com/token") {
				b.Fatal("not equal")
			}
		}
	})
}
