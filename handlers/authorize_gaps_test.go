package handlers

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/dpopkit/dpop/store"
)

// Authorization endpoint behaviour that the mutation run found untested:
// a host that handles the request without writing anything, the text of
// each error page, a request without client_id while the client store is
// down, and registered redirect URIs the endpoint cannot redirect to.

// gapWantPage asserts the error page with status and text, and that no code
// was stored.
func gapWantPage(t *testing.T, r response, gs *gapStore, status int, text string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; Location %q; body %q", r.status, status, r.header.Get("Location"), r.raw)
	}
	checkAuthorizePage(t, r, nil)
	if !strings.Contains(r.raw, "<p>"+html.EscapeString(text)+"</p>") {
		t.Errorf("page %q, want the text %q", r.raw, text)
	}
	if loc := r.header.Get("Location"); loc != "" {
		t.Errorf("Location %q on an error page", loc)
	}
	if gs != nil {
		if n := gs.called("SaveCode"); n != 0 {
			t.Errorf("%d codes stored", n)
		}
	}
}

// An Authenticator that reports the request handled has answered it, even
// when it wrote nothing (an empty 200, headers of its own): the endpoint
// adds nothing, neither a redirect nor a code.
func TestAuthorizeGapHandledWithoutWriting(t *testing.T) {
	for _, subject := range []string{"", "alice"} {
		t.Run("subject "+subject, func(t *testing.T) {
			h, gs := gapHarness(t, nil, func(c *Config) {
				c.Authenticate = func(w http.ResponseWriter, _ *http.Request, _ *AuthorizationRequest) (string, bool, error) {
					w.Header().Set("X-Host", "handled")
					return subject, true, nil
				}
			})
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				r := h.authzRequest(method, authzParams("response_type", "code", "client_id", confID, "redirect_uri", redirectURI, "state", "s"), "", "", nil)
				if r.status != http.StatusOK || r.raw != "" {
					t.Errorf("%s: got %d %q, want the host's empty 200", method, r.status, r.raw)
				}
				if loc := r.header.Get("Location"); loc != "" {
					t.Errorf("%s: Location %q", method, loc)
				}
				if got := r.header.Get("X-Host"); got != "handled" {
					t.Errorf("%s: X-Host %q, want the host's header", method, got)
				}
			}
			if n := gs.called("SaveCode"); n != 0 {
				t.Errorf("%d codes stored", n)
			}
		})
	}
}

// Each page says what went wrong: an oversized POST body is "too large"
// (413); every other malformed request is "malformed" (400).
func TestAuthorizeGapPageTexts(t *testing.T) {
	h, gs := gapHarness(t, nil, func(c *Config) { c.MaxBodyBytes = 64 })
	base := authzParams("response_type", "code", "client_id", confID, "redirect_uri", redirectURI)
	large := authzParams("response_type", "code", "client_id", confID, "scope", strings.Repeat("read ", 20))
	for _, tc := range []struct {
		name                 string
		method, rawQuery, ct string
		params               url.Values
		status               int
		text                 string
	}{
		{"POST too large", http.MethodPost, "", "", large, http.StatusRequestEntityTooLarge, authzPageTooLarge},
		{"malformed query", http.MethodGet, "response_type=code&client_id=conf&state=%zz", "", nil, http.StatusBadRequest, authzPageMalformed},
		{"repeated parameter", http.MethodGet, "response_type=code&client_id=conf&client_id=conf", "", nil, http.StatusBadRequest, authzPageMalformed},
		{"POST not a form", http.MethodPost, "", "text/plain", base, http.StatusBadRequest, authzPageMalformed},
		{"POST with a query", http.MethodPost, "client_id=conf", "", base, http.StatusBadRequest, authzPageMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.authzRequest(tc.method, tc.params, tc.rawQuery, tc.ct, authzAlice)
			gapWantPage(t, r, gs, tc.status, tc.text)
		})
	}
}

// A request that names no client is refused with the "not registered" page
// before the store is asked: a client store that is down changes nothing.
func TestAuthorizeGapMissingClientID(t *testing.T) {
	h, gs := gapHarness(t, func(_ *gapStore, k *gapHooks) {
		k.getClient = func(context.Context, string) (*store.Client, error) { return nil, errDown }
	}, nil)
	for _, tc := range []struct {
		name     string
		rawQuery string
	}{
		{"no client_id", "response_type=code&redirect_uri=" + redirectURI + "&state=s"},
		{"empty client_id", "response_type=code&client_id=&redirect_uri=" + redirectURI + "&state=s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.authzRequest(http.MethodGet, nil, tc.rawQuery, "", authzAlice)
			gapWantPage(t, r, gs, http.StatusBadRequest, authzPageClient)
			if n := gs.called("GetClient"); n != 0 {
				t.Errorf("the client store was asked %d times", n)
			}
		})
	}
	// The store is down indeed: a named client gets the "unavailable" page.
	r := h.authzRequest(http.MethodGet, authzParams("response_type", "code", "client_id", confID, "redirect_uri", redirectURI), "", "", authzAlice)
	gapWantPage(t, r, gs, http.StatusServiceUnavailable, authzPageUnavailable)
}

// A registered redirect URI the endpoint cannot send the user back to (not
// a URI, not absolute, with a fragment, or with a query that is not form
// encoding, so that the response parameters could not be added to it) gets
// the redirect error page: no redirect, no code. The store's own client
// validation refuses some of them; the endpoint does not rely on it, and
// the clients with those are served by a store that does not validate.
func TestAuthorizeGapUnusableRedirectURI(t *testing.T) {
	const crafted = "crafted"
	for _, tc := range []struct {
		name       string
		uri        string
		registered bool // saved through the memory store, which validates
	}{
		{"not a URI", "https://app.example/%zz", false},
		{"relative", "/cb", false},
		{"relative with a query", "cb?x=1", false},
		{"fragment", "https://app.example/cb#frag", false},
		{"empty fragment", "https://app.example/cb#", false},
		{"query not form encoding", "https://app.example/cb?x=%zz", true},
		{"query with a semicolon", "https://app.example/cb?a=1;b=2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := &store.Client{ID: crafted, SecretHash: store.HashSecret("crafted-secret-0123456789abcdef"),
				GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{tc.uri}, Scopes: []string{"read"}}
			h, gs := gapHarness(t, nil, nil)
			if tc.registered {
				if err := h.store.SaveClient(context.Background(), client); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := client.Validate(); err == nil {
					t.Fatalf("Validate accepts %q", tc.uri)
				}
				gs.set(func(k *gapHooks) {
					k.getClient = func(ctx context.Context, id string) (*store.Client, error) {
						if id == crafted {
							return client.Clone(), nil
						}
						return gs.Memory.GetClient(ctx, id)
					}
				})
			}
			for _, sent := range []string{tc.uri, ""} {
				params := authzParams("response_type", "code", "client_id", crafted, "state", "s")
				if sent != "" {
					params.Set("redirect_uri", sent)
				}
				for _, method := range []string{http.MethodGet, http.MethodPost} {
					r := h.authzRequest(method, params, "", "", authzAlice)
					gapWantPage(t, r, gs, http.StatusBadRequest, authzPageRedirect)
				}
			}
		})
	}
}
