package handlers

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dpopkit/dpop"
)

// An issuer may have a path (RFC 8414 §2). Config.Paths are relative to the
// issuer, so Mount serves each endpoint under the issuer's path, at the URL
// metadata advertises, and the metadata where RFC 8414 §3.1 puts it: the
// well-known path between the host and the issuer's path.

// tokenAt asks the token endpoint at the absolute URL u for a client
// credentials token, with a proof for u and Basic authentication of the
// confidential client.
func (h *harness) tokenAt(u string) response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(ccForm().Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	setHeaders(req, map[string]string{"basic": confID + ":" + confSecret, "DPoP": proofBy(h.t, h.signer, http.MethodPost, u, dpop.ProofOptions{})})
	return h.do(req)
}

// recordingRouter is a Router that keeps the patterns registered on it.
type recordingRouter struct{ patterns []string }

func (r *recordingRouter) Handle(pattern string, _ http.Handler) {
	r.patterns = append(r.patterns, pattern)
}

// A client that knows the issuer http://127.0.0.1:PORT/tenant1 finds the
// metadata at /.well-known/oauth-authorization-server/tenant1 (RFC 8414
// §3.1), checks that its issuer is the one it used (§3.3), and gets a token
// at the token_endpoint it advertises.
func TestIssuerPathDiscoveryThenToken(t *testing.T) {
	var issuer string
	h := newHarness(t, func(c *Config) {
		c.Issuer += "/tenant1"
		issuer = c.Issuer
	})
	md := h.mdRequest(http.MethodGet, "/.well-known/oauth-authorization-server/tenant1")
	if md.status != http.StatusOK {
		t.Fatalf("metadata: got %d %s", md.status, md.raw)
	}
	if got := md.str("issuer"); got != issuer {
		t.Fatalf("issuer %q, want %q (RFC 8414 §3.3)", got, issuer)
	}
	tokenURL := md.str("token_endpoint")
	if want := issuer + DefaultPaths.Token; tokenURL != want {
		t.Fatalf("token_endpoint %q, want %q", tokenURL, want)
	}
	r := wantToken(t, h.tokenAt(tokenURL), TokenTypeDPoP)
	rec, err := h.accessRecord(r.str("access_token"))
	if err != nil || rec.JKT != h.signer.JKT() || rec.ClientID != confID {
		t.Fatalf("stored %+v, %v", rec, err)
	}
}

// With an issuer that has a path, nothing is served at the paths relative to
// the host: a client following the metadata never uses them, and serving
// them would give each endpoint a second URL that proofs do not match.
func TestIssuerPathUnprefixedNotServed(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Issuer += "/tenant1"
		ixJWTConfig(t, c)
	})
	p := DefaultPaths
	for _, path := range []string{p.Token, p.Authorize, p.Revoke, p.Introspect, p.JWKS, p.Metadata,
		// Where OpenID Connect Discovery, not RFC 8414, puts it.
		"/tenant1" + p.Metadata} {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			if r := h.mdRequest(m, path); r.status != http.StatusNotFound {
				t.Errorf("%s %s: got %d %s, want 404", m, path, r.status, r.raw)
			}
		}
	}
}

func TestMountIssuerPaths(t *testing.T) {
	custom := Paths{Token: "/t", Authorize: "/a", Revoke: "/r", Introspect: "/i", JWKS: "/k", Metadata: "/meta"}
	tests := []struct {
		name  string
		path  string // appended to the test server's URL to make Config.Issuer
		paths Paths  // Config.Paths; zero for the defaults
		// want is the issuer's path as normalised, which the metadata's
		// issuer ends with and every mounted path but the metadata's
		// starts with.
		want string
		// notServed are request paths that must answer 404.
		notServed []string
	}{
		{"no path", "", Paths{}, "", nil},
		{"no path, trailing slash", "/", Paths{}, "", nil},
		{"one segment", "/tenant1", Paths{}, "/tenant1", []string{"/oauth2/token"}},
		{"one segment, trailing slash", "/tenant1/", Paths{}, "/tenant1", []string{"/oauth2/token"}},
		{"one segment, configured paths", "/tenant1", custom, "/tenant1", []string{"/t", "/meta"}},
		{"two segments", "/org/tenant1", Paths{}, "/org/tenant1",
			[]string{"/tenant1/oauth2/token", "/org/oauth2/token", "/.well-known/oauth-authorization-server/org"}},
		// An encoded "/" is part of a segment: the decoded path is another
		// resource (RFC 3986 §2.2).
		{"escaped slash", "/a%2Fb", Paths{}, "/a%2Fb",
			[]string{"/a/b/oauth2/token", "/.well-known/oauth-authorization-server/a/b"}},
		// Percent-encodings are normalised to upper case (RFC 3986 §6.2.2.1).
		{"escaped non-ASCII", "/t%c3%a9nant", Paths{}, "/t%C3%A9nant", nil},
		// An encoded unreserved character is decoded (RFC 3986 §6.2.2.2).
		{"escaped unreserved", "/%7Etenant", Paths{}, "/~tenant", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.Issuer += tc.path
				c.Paths = tc.paths
				ixJWTConfig(t, c)
			})
			p := tc.paths
			if p == (Paths{}) {
				p = DefaultPaths
			}
			issuer := h.ts.URL + tc.want
			want := Paths{
				Token: tc.want + p.Token, Authorize: tc.want + p.Authorize, Revoke: tc.want + p.Revoke,
				Introspect: tc.want + p.Introspect, JWKS: tc.want + p.JWKS, Metadata: p.Metadata + tc.want,
				PushedAuthorization: tc.want + DefaultPaths.PushedAuthorization,
			}
			if got := h.srv.MountPaths(); got != want {
				t.Errorf("MountPaths %+v, want %+v", got, want)
			}
			var rec recordingRouter
			h.srv.Mount(&rec)
			wantPatterns := []string{want.Token, want.Authorize, want.Revoke, want.Introspect, want.Metadata, want.JWKS, want.PushedAuthorization}
			if !slices.Equal(rec.patterns, wantPatterns) {
				t.Errorf("Mount registered %q, want %q", rec.patterns, wantPatterns)
			}

			md := h.mdRequest(http.MethodGet, want.Metadata)
			if md.status != http.StatusOK {
				t.Fatalf("metadata at %s: got %d %s", want.Metadata, md.status, md.raw)
			}
			if wantMD := mdWant(issuer, p, dpop.DefaultAlgorithms(), true); !reflect.DeepEqual(md.body, wantMD) {
				t.Errorf("metadata\ngot  %s\nwant %v", md.raw, wantMD)
			}
			// Every advertised URL is the test server's URL followed by
			// the path it is mounted at, and is served there.
			for k, path := range map[string]string{
				"authorization_endpoint": want.Authorize, "token_endpoint": want.Token, "revocation_endpoint": want.Revoke,
				"introspection_endpoint": want.Introspect, "jwks_uri": want.JWKS,
			} {
				if u := md.str(k); u != h.ts.URL+path {
					t.Errorf("%s %q, want the server's URL followed by %q", k, u, path)
				}
				if r := h.mdRequest(http.MethodGet, path); r.status == http.StatusNotFound {
					t.Errorf("%s: %s is not served", k, path)
				}
			}
			wantToken(t, h.tokenAt(md.str("token_endpoint")), TokenTypeDPoP)
			for _, path := range tc.notServed {
				if r := h.mdRequest(http.MethodGet, path); r.status != http.StatusNotFound {
					t.Errorf("%s: got %d %s, want 404", path, r.status, r.raw)
				}
			}
		})
	}
}
