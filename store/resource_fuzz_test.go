package store_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/dpopkit/dpop/store"
)

// FuzzValidResource: whatever a resource parameter holds, ValidResource
// answers without panicking, and what it accepts is an absolute URI of at
// most MaxResourceLen ASCII bytes, without a fragment, space or control
// character (RFC 8707 §2), whose error never echoes it.
func FuzzValidResource(f *testing.F) {
	for _, s := range []string{
		"https://api.example", "urn:example:rs", "/api", "https://api.example/#f", "", "#",
		"https://api.example/a b", "https://ápi.example", "https://api.example/\x00", "http://[::1]:80/x?y#",
		"https://api.example/" + strings.Repeat("a", store.MaxResourceLen),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, r string) {
		err := store.ValidResource(r)
		if err != nil {
			if len(r) > 3 && strings.Contains(err.Error(), r) {
				t.Fatalf("error %q echoes the input", err)
			}
			return
		}
		if len(r) > store.MaxResourceLen || strings.ContainsAny(r, "# ") {
			t.Fatalf("accepted %q", r)
		}
		for i := 0; i < len(r); i++ {
			if r[i] < 0x21 || r[i] > 0x7e {
				t.Fatalf("accepted %q with byte %#x", r, r[i])
			}
		}
		if u, err := url.Parse(r); err != nil || !u.IsAbs() {
			t.Fatalf("accepted %q, not an absolute URI", r)
		}
	})
}
