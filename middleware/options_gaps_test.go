package middleware

import (
	"net/http"
	"strings"
	"testing"
)

// serverURLAllowed is the rule for JWTOptions.JWKSURL and
// IntrospectionOptions.Endpoint: absolute https, or http on a loopback
// address, without user info or fragment; a URL that does not parse is
// refused (not a panic).
func TestServerURLAllowedGaps(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://as.example/jwks", true},
		{"http://127.0.0.1:8080/jwks", true},
		{"http://[::1]/jwks", true},
		{"http://localhost/jwks", true},
		{"https:///jwks", false},                      // no host
		{"https://as.example/%zz", false},             // does not parse
		{"http://[::1/jwks", false},                   // does not parse
		{"https://u:p@as.example/jwks", false},        // user info, no '#'
		{"https://u@as.example/jwks", false},          // user name only
		{"https://as.example/jwks#", false},           // empty fragment
		{"https://as.example/jwks#k", false},          // fragment
		{"http://192.0.2.1/jwks", false},              // an IP, not loopback
		{"http://10.0.0.1:8080/jwks", false},          // a private IP
		{"http://[2001:db8::1]/jwks", false},          // an IPv6 address, not loopback
		{"http://as.example/jwks", false},             // a name, not localhost
		{"http://127.0.0.1.evil.example/jwks", false}, // looks like loopback
	} {
		if got := serverURLAllowed(tc.url); got != tc.ok {
			t.Errorf("serverURLAllowed(%q) = %v, want %v", tc.url, got, tc.ok)
		}
	}
}

// The default JWKS client follows at most 4 redirects (the 5th is refused)
// and only to URLs serverURLAllowed accepts, so that https cannot be
// downgraded to http on the way.
func TestDefaultJWKSClientRedirectsGaps(t *testing.T) {
	o, err := JWTOptions{Issuer: "i", JWKSURL: "https://as.example/jwks"}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	check := o.HTTPClient.CheckRedirect
	if check == nil {
		t.Fatal("default client has no redirect policy")
	}
	req := func(u string) *http.Request {
		r, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	via := func(n int) []*http.Request {
		rs := make([]*http.Request, n)
		for i := range rs {
			rs[i] = req("https://as.example/jwks")
		}
		return rs
	}
	for _, tc := range []struct {
		name string
		to   string
		via  int
		want string // "" allowed, else the error
	}{
		{"first https redirect", "https://as2.example/jwks", 1, ""},
		{"4th redirect", "https://as2.example/jwks", 4, ""},
		{"loopback http", "http://127.0.0.1:9/jwks", 1, ""},
		{"5th redirect", "https://as2.example/jwks", 5, "too many redirects"},
		{"9th redirect", "https://as2.example/jwks", 9, "too many redirects"},
		{"downgrade to http", "http://as.example/jwks", 1, "redirect to an insecure URL"},
		{"to user info", "https://u:p@as.example/jwks", 1, "redirect to an insecure URL"},
		{"to a non-loopback IP over http", "http://192.0.2.1/jwks", 2, "redirect to an insecure URL"},
	} {
		err := check(req(tc.to), via(tc.via))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// A caller's own client is kept as given.
	own := &http.Client{}
	if o, err := (JWTOptions{Issuer: "i", JWKSURL: "https://as.example/jwks", HTTPClient: own}).normalize(); err != nil || o.HTTPClient != own {
		t.Errorf("own client replaced: %v", err)
	}
	if !strings.Contains(DefaultHTTPTimeout.String(), "10s") || o.HTTPClient.Timeout != DefaultHTTPTimeout {
		t.Errorf("default client timeout %v", o.HTTPClient.Timeout)
	}
}
