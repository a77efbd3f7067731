package handlers

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"

	"github.com/dpopkit/dpop"
)

// TestParseScope: one reading of the scope parameter (RFC 6749 §3.3) for
// every endpoint: space-separated scope tokens, nothing else.
func TestParseScope(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"", nil, true},
		{" ", nil, true}, // no token: absent
		{"   ", nil, true},
		{"read", []string{"read"}, true},
		{"read write", []string{"read", "write"}, true},
		{" read  write ", []string{"read", "write"}, true},
		{"a!#[]~", []string{"a!#[]~"}, true},
		{"read\twrite", nil, false}, // only the space separates
		{"read\nwrite", nil, false},
		{`re"ad`, nil, false},
		{`re\ad`, nil, false},
		{"r\x7fead", nil, false},
		{"lecture-é", nil, false},
	} {
		got, ok := parseScope(tc.in)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseScope(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestTokenScopeParameter: a malformed scope is invalid_scope at the token
// endpoint, for client credentials and refresh alike; a scope of spaces only
// counts as absent (the refresh keeps the grant's scope).
func TestTokenScopeParameter(t *testing.T) {
	h := newHarness(t, nil)
	cc := ccForm()
	cc.Set("scope", "read\twrite")
	wantError(t, h.postForm(DefaultPaths.Token, cc, confHeaders(h, h.signer)), http.StatusBadRequest, dpop.CodeInvalidScope)

	first := wantToken(t, h.publicTokenRequest(codeForm(h.saveCode(pubID, nil)), h.signer), TokenTypeDPoP)
	rt := first.str("refresh_token")
	bad := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"read\nwrite"}}
	wantError(t, h.publicTokenRequest(bad, h.signer), http.StatusBadRequest, dpop.CodeInvalidScope)
	blank := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"  "}}
	r := wantToken(t, h.publicTokenRequest(blank, h.signer), TokenTypeDPoP)
	if got, want := r.str("scope"), first.str("scope"); got != want || got == "" {
		t.Errorf("scope after a refresh with a blank scope %q, want the grant's %q", got, want)
	}
}
