package handlers

import (
	"github.com/dpopkit/dpop"
	"reflect"

	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// Clients the authorization tests register besides the harness's own.
const (
	authzQueryID    = "qs" // confidential, its redirect URI has a query
	authzQueryURI   = "https://app.example/cb?x=1&y=two+words"
	authzNoCodeID   = "nocode" // a redirect URI, but no authorization_code grant
	authzNoCodeURI  = "https://svc.example/cb"
	authzLoopbackCB = "http://127.0.0.1:8765/callback"
)

// authzStore wraps the harness store to count saved codes and to fail on
// demand.
type authzStore struct {
	store.Store
	mu           sync.Mutex
	saved        int
	getClientErr error
	saveCodeErr  error
}

func (s *authzStore) GetClient(ctx context.Context, id string) (*store.Client, error) {
	s.mu.Lock()
	err := s.getClientErr
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.Store.GetClient(ctx, id)
}

func (s *authzStore) SaveCode(ctx context.Context, h store.TokenHash, c *store.AuthorizationCode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.saveCodeErr != nil {
		return s.saveCodeErr
	}
	s.saved++
	return s.Store.SaveCode(ctx, h, c)
}

func (s *authzStore) savedCodes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saved
}

// newAuthzHarness is a harness whose store is wrapped in an authzStore and
// that has the extra clients registered.
func newAuthzHarness(t *testing.T, edit func(*Config)) (*harness, *authzStore) {
	t.Helper()
	var st *authzStore
	h := newHarness(t, func(c *Config) {
		st = &authzStore{Store: c.Store}
		c.Store = st
		if edit != nil {
			edit(c)
		}
	})
	ctx := context.Background()
	for _, c := range []*store.Client{
		{ID: authzQueryID, SecretHash: store.HashSecret("qs-secret-0123456789abcdef"), GrantTypes: []string{"authorization_code"},
			RedirectURIs: []string{authzQueryURI}, Scopes: []string{"read"}},
		{ID: authzNoCodeID, SecretHash: store.HashSecret("nocode-secret-0123456789abcdef"), GrantTypes: []string{"client_credentials"},
			RedirectURIs: []string{authzNoCodeURI}, Scopes: []string{"read"}},
	} {
		if err := h.store.SaveClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	return h, st
}

// authzParams builds parameters from pairs; a name may come twice.
func authzParams(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// authzRequest sends an authorization request: params in the query for GET,
// in the body otherwise. rawQuery, when set, is used as the query as is.
func (h *harness) authzRequest(method string, params url.Values, rawQuery, contentType string, headers map[string]string) response {
	h.t.Helper()
	u := h.ts.URL + DefaultPaths.Authorize
	var body string
	if method == http.MethodGet {
		u += "?" + params.Encode()
	} else {
		body = params.Encode()
		if contentType == "" {
			contentType = "application/x-www-form-urlencoded"
		}
	}
	if rawQuery != "" {
		u = h.ts.URL + DefaultPaths.Authorize + "?" + rawQuery
	}
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	setHeaders(req, headers)
	return h.do(req)
}

var (
	authzChallenge = S256Challenge(strings.Repeat("verifier-", 6))
	authzJKT       = S256Challenge("a JWK thumbprint stand-in")
	authzAlice     = map[string]string{"basic": "alice:wonderland"}
)

// errQuery is the query of an error redirect; "*" matches any non-empty value.
func errQuery(code dpop.ErrorCode, state string) map[string]string {
	q := map[string]string{"error": string(code), "error_description": "*", "iss": "*issuer"}
	if state != "" {
		q["state"] = state
	}
	return q
}

// codeQuery is the query of a successful redirect.
func codeQuery(state string) map[string]string {
	q := map[string]string{"code": "*", "iss": "*issuer"}
	if state != "" {
		q["state"] = state
	}
	return q
}

type authzCase struct {
	name        string
	edit        func(*Config)
	fail        func(*authzStore)
	method      string // default GET
	params      url.Values
	rawQuery    string
	contentType string
	headers     map[string]string // default authzAlice; use an empty map for none
	status      int
	// location is the Location without its query ("" when there must be
	// none); query is its exact query, "*" matching any non-empty value and
	// "*issuer" the server's issuer.
	location string
	query    map[string]string
	// page marks the HTML error page; absent are strings it must not
	// contain.
	page   bool
	absent []string
	// body, when set, is the exact body (a response of the host).
	body string
	// record is the stored code (GrantID and ExpiresAt aside) when one must
	// be issued.
	record *store.AuthorizationCode
}

func TestAuthorize(t *testing.T) {
	const state = "st&te=1 x/?"
	base := func(kv ...string) url.Values {
		return authzParams(append([]string{"response_type", "code", "client_id", confID, "redirect_uri", redirectURI, "state", state}, kv...)...)
	}
	pubBase := func(kv ...string) url.Values {
		return authzParams(append([]string{"response_type", "code", "client_id", pubID, "redirect_uri", authzLoopbackCB, "state", state}, kv...)...)
	}
	pkce := []string{"code_challenge", authzChallenge, "code_challenge_method", "S256"}
	badHashes := map[string]string{
		"42 chars":        authzChallenge[:42],
		"44 chars":        authzChallenge + "A",
		"padding":         authzChallenge[:42] + "=",
		"padded 44":       authzChallenge + "=",
		"standard plus":   "+" + authzChallenge[1:],
		"standard slash":  "/" + authzChallenge[1:],
		"non-canonical":   authzChallenge[:42] + "B", // low bits set: not a strict encoding
		"with whitespace": authzChallenge[:42] + " ",
	}

	cases := []authzCase{
		// Success.
		{name: "conf with redirect_uri", params: base("scope", "read"), status: http.StatusFound, location: redirectURI, query: codeQuery(state),
			record: &store.AuthorizationCode{ClientID: confID, RedirectURI: redirectURI, Scope: "read", Subject: "alice"}},
		{name: "conf without redirect_uri, with PKCE", params: authzParams(append([]string{"response_type", "code", "client_id", confID, "state", state}, pkce...)...),
			status: http.StatusFound, location: redirectURI, query: codeQuery(state),
			record: &store.AuthorizationCode{ClientID: confID, Scope: "read write", Subject: "alice", CodeChallenge: authzChallenge, CodeChallengeMethod: "S256"}},
		{name: "conf with PKCE, dpop_jkt and no state", params: authzParams(append([]string{"response_type", "code", "client_id", confID, "redirect_uri", redirectURI, "dpop_jkt", authzJKT}, pkce...)...),
			status: http.StatusFound, location: redirectURI, query: codeQuery(""),
			record: &store.AuthorizationCode{ClientID: confID, RedirectURI: redirectURI, Scope: "read write", Subject: "alice", CodeChallenge: authzChallenge, CodeChallengeMethod: "S256", DPoPJKT: authzJKT}},
		{name: "pub with PKCE and dpop_jkt", params: pubBase(append(pkce, "dpop_jkt", authzJKT, "scope", "write  read")...), status: http.StatusFound, location: authzLoopbackCB, query: codeQuery(state),
			record: &store.AuthorizationCode{ClientID: pubID, RedirectURI: authzLoopbackCB, Scope: "write read", Subject: "alice", CodeChallenge: authzChallenge, CodeChallengeMethod: "S256", DPoPJKT: authzJKT}},
		{name: "RequirePKCE conf with PKCE", edit: func(c *Config) { c.RequirePKCE, c.CodeTTL = true, 5*time.Minute }, params: base(pkce...), status: http.StatusFound, location: redirectURI, query: codeQuery(state),
			record: &store.AuthorizationCode{ClientID: confID, RedirectURI: redirectURI, Scope: "read write", Subject: "alice", CodeChallenge: authzChallenge, CodeChallengeMethod: "S256"}},
		{name: "POST form", method: http.MethodPost, params: pubBase(append(pkce, "dpop_jkt", authzJKT)...), status: http.StatusSeeOther, location: authzLoopbackCB, query: codeQuery(state),
			record: &store.AuthorizationCode{ClientID: pubID, RedirectURI: authzLoopbackCB, Scope: "read write", Subject: "alice", CodeChallenge: authzChallenge, CodeChallengeMethod: "S256", DPoPJKT: authzJKT}},
		{name: "registered query kept", params: authzParams("response_type", "code", "client_id", authzQueryID, "redirect_uri", authzQueryURI, "state", state),
			status: http.StatusFound, location: "https://app.example/cb", query: map[string]string{"x": "1", "y": "two words", "code": "*", "state": state, "iss": "*issuer"},
			record: &store.AuthorizationCode{ClientID: authzQueryID, RedirectURI: authzQueryURI, Scope: "read", Subject: "alice"}},
		{name: "registered query kept, redirect_uri omitted", params: authzParams("response_type", "code", "client_id", authzQueryID),
			status: http.StatusFound, location: "https://app.example/cb", query: map[string]string{"x": "1", "y": "two words", "code": "*", "iss": "*issuer"},
			record: &store.AuthorizationCode{ClientID: authzQueryID, Scope: "read", Subject: "alice"}},
		{name: "empty parameters count as absent", params: base("scope", "", "dpop_jkt", ""), status: http.StatusFound, location: redirectURI, query: codeQuery(state),
			record: &store.AuthorizationCode{ClientID: confID, RedirectURI: redirectURI, Scope: "read write", Subject: "alice"}},

		// Never redirected: an HTML page.
		{name: "unknown client", params: authzParams("response_type", "code", "client_id", "nobody", "redirect_uri", redirectURI, "state", state), status: http.StatusBadRequest, page: true},
		{name: "missing client_id", params: authzParams("response_type", "code", "redirect_uri", redirectURI), status: http.StatusBadRequest, page: true},
		{name: "attacker client_id not echoed", params: authzParams("response_type", "code", "client_id", "<script>alert(1)</script>", "redirect_uri", "https://evil.example/<script>"),
			status: http.StatusBadRequest, page: true, absent: []string{"<script", "alert", "evil.example"}},
		{name: "attacker redirect_uri not echoed", params: url.Values{}, rawQuery: "response_type=code&client_id=conf&redirect_uri=" + url.QueryEscape("https://evil.example/<script>alert(1)</script>") + "&state=%3Cscript%3E",
			status: http.StatusBadRequest, page: true, absent: []string{"<script", "alert", "evil.example"}},
		{name: "unregistered redirect_uri", params: authzParams("response_type", "code", "client_id", confID, "redirect_uri", "https://evil.example/cb"), status: http.StatusBadRequest, page: true},
		{name: "redirect_uri trailing slash", params: authzParams("response_type", "code", "client_id", confID, "redirect_uri", redirectURI+"/"), status: http.StatusBadRequest, page: true},
		{name: "redirect_uri host case", params: authzParams("response_type", "code", "client_id", confID, "redirect_uri", "https://APP.example/cb"), status: http.StatusBadRequest, page: true},
		{name: "redirect_uri path case", params: authzParams("response_type", "code", "client_id", confID, "redirect_uri", "https://app.example/CB"), status: http.StatusBadRequest, page: true},
		{name: "redirect_uri extra query", params: authzParams("response_type", "code", "client_id", confID, "redirect_uri", redirectURI+"?x=1"), status: http.StatusBadRequest, page: true},
		{name: "redirect_uri registered query missing", params: authzParams("response_type", "code", "client_id", authzQueryID, "redirect_uri", "https://app.example/cb"), status: http.StatusBadRequest, page: true},
		{name: "redirect_uri of another client", params: authzParams("response_type", "code", "client_id", confID, "redirect_uri", authzLoopbackCB), status: http.StatusBadRequest, page: true},
		{name: "redirect_uri omitted, two registered", params: authzParams(append([]string{"response_type", "code", "client_id", pubID}, pkce...)...), status: http.StatusBadRequest, page: true},
		{name: "client without redirect URIs", params: authzParams("response_type", "code", "client_id", bearerID), status: http.StatusBadRequest, page: true},
		{name: "repeated state", params: base("state", "again"), status: http.StatusBadRequest, page: true},
		{name: "repeated client_id", params: base("client_id", confID), status: http.StatusBadRequest, page: true},
		{name: "repeated empty parameter", params: base("scope", "", "scope", ""), status: http.StatusBadRequest, page: true},
		{name: "malformed query", params: url.Values{}, rawQuery: "response_type=code&client_id=conf&state=%zz", status: http.StatusBadRequest, page: true},
		{name: "PUT", method: http.MethodPut, params: base(), status: http.StatusMethodNotAllowed, page: true},
		{name: "POST with a query", method: http.MethodPost, params: base(), rawQuery: "client_id=conf", status: http.StatusBadRequest, page: true},
		{name: "POST not a form", method: http.MethodPost, params: base(), contentType: "text/plain", status: http.StatusBadRequest, page: true},
		{name: "POST too large", edit: func(c *Config) { c.MaxBodyBytes = 64 }, method: http.MethodPost, params: base("scope", strings.Repeat("read ", 20)),
			status: http.StatusRequestEntityTooLarge, page: true},
		{name: "no Authenticator", edit: func(c *Config) { c.Authenticate = nil }, params: base(), status: http.StatusInternalServerError, page: true},
		{name: "client store down", fail: func(s *authzStore) { s.getClientErr = errors.New("connection refused") }, params: base(),
			status: http.StatusServiceUnavailable, page: true, absent: []string{"connection refused"}},

		// Redirected errors.
		{name: "response_type token", params: authzParams("response_type", "token", "client_id", confID, "redirect_uri", redirectURI, "state", state),
			status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeUnsupportedResponseType, state)},
		{name: "a request object (RFC 9101) refused, not ignored", params: base("request", "eyJhbGciOiJub25lIn0.e30."),
			status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeRequestNotSupported, state)},
		{name: "response_type missing", params: authzParams("client_id", confID, "redirect_uri", redirectURI, "state", state),
			status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeInvalidRequest, state)},
		{name: "response_type code token", params: authzParams("response_type", "code token", "client_id", confID, "redirect_uri", redirectURI),
			status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeUnsupportedResponseType, "")},
		{name: "client without the code grant", params: authzParams("response_type", "code", "client_id", authzNoCodeID, "redirect_uri", authzNoCodeURI, "state", state),
			status: http.StatusFound, location: authzNoCodeURI, query: errQuery(dpop.CodeUnauthorizedClient, state)},
		{name: "unregistered scope", params: base("scope", "read admin"), status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeInvalidScope, state)},
		{name: "scope policy failure", edit: func(c *Config) {
			c.ScopePolicy = func(context.Context, *store.Client, []string) ([]string, error) {
				return nil, errors.New("policy down")
			}
		}, params: base(), status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeServerError, state)},
		{name: "scope policy refusal", edit: func(c *Config) {
			c.ScopePolicy = func(context.Context, *store.Client, []string) ([]string, error) { return nil, ErrScope }
		}, params: base(), status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeInvalidScope, state)},
		{name: "public client without code_challenge", params: pubBase("dpop_jkt", authzJKT), status: http.StatusFound, location: authzLoopbackCB, query: errQuery(dpop.CodeInvalidRequest, state)},
		{name: "method plain", params: base("code_challenge", authzChallenge, "code_challenge_method", "plain"), status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeInvalidRequest, state)},
		{name: "method s256 lower case", params: base("code_challenge", authzChallenge, "code_challenge_method", "s256"), status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeInvalidRequest, state)},
		{name: "challenge without method", params: base("code_challenge", authzChallenge), status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeInvalidRequest, state)},
		{name: "method without challenge", params: base("code_challenge_method", "S256"), status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeInvalidRequest, state)},
		{name: "RequirePKCE conf without challenge", edit: func(c *Config) { c.RequirePKCE = true }, params: base(), status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeInvalidRequest, state)},
		{name: "user not logged in", headers: map[string]string{}, params: base(), status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeAccessDenied, state)},
		{name: "wrong password", headers: map[string]string{"basic": "alice:queen"}, params: base(), status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeAccessDenied, state)},
		{name: "POST error", method: http.MethodPost, params: base("scope", "admin"), status: http.StatusSeeOther, location: redirectURI, query: errQuery(dpop.CodeInvalidScope, state)},
		{name: "authenticator failure", edit: func(c *Config) {
			c.Authenticate = func(http.ResponseWriter, *http.Request, *AuthorizationRequest) (string, bool, error) {
				return "", false, errors.New("idp down")
			}
		}, params: base(), status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeServerError, state)},
		{name: "code store down", fail: func(s *authzStore) { s.saveCodeErr = errors.New("disk full") }, params: base(), status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeServerError, state)},

		// The host's own response.
		{name: "host page with a subject", edit: func(c *Config) {
			c.Authenticate = func(w http.ResponseWriter, _ *http.Request, _ *AuthorizationRequest) (string, bool, error) {
				w.WriteHeader(http.StatusOK)
				w.Write([]byte("consent page"))
				return "alice", true, nil
			}
		}, params: base(), status: http.StatusOK, body: "consent page"},
		{name: "host login redirect", headers: map[string]string{"X-Login": "redirect"}, params: base(), status: http.StatusFound, location: "/login", query: map[string]string{}},
	}
	for name, bad := range badHashes {
		cases = append(cases,
			authzCase{name: "code_challenge " + name, params: base("code_challenge", bad, "code_challenge_method", "S256"),
				status: http.StatusFound, location: redirectURI, query: errQuery(dpop.CodeInvalidRequest, state)},
			authzCase{name: "dpop_jkt " + name, params: pubBase(append(pkce, "dpop_jkt", bad)...),
				status: http.StatusFound, location: authzLoopbackCB, query: errQuery(dpop.CodeInvalidRequest, state)})
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, st := newAuthzHarness(t, tc.edit)
			if tc.fail != nil {
				st.mu.Lock()
				tc.fail(st)
				st.mu.Unlock()
			}
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			headers := tc.headers
			if headers == nil {
				headers = authzAlice
			}
			before := time.Now()
			r := h.authzRequest(method, tc.params, tc.rawQuery, tc.contentType, headers)
			after := time.Now()

			if r.status != tc.status {
				t.Fatalf("status %d, want %d; Location %q; body %q", r.status, tc.status, r.header.Get("Location"), r.raw)
			}
			loc := r.header.Get("Location")
			if tc.page {
				checkAuthorizePage(t, r, tc.absent)
			}
			if tc.body != "" && r.raw != tc.body {
				t.Errorf("body %q, want %q", r.raw, tc.body)
			}
			if tc.location == "" {
				if loc != "" {
					t.Fatalf("Location %q, want none", loc)
				}
			} else {
				checkAuthorizeLocation(t, h, loc, tc.location, tc.query)
			}

			wantSaved := 0
			if tc.record != nil {
				wantSaved = 1
			}
			if n := st.savedCodes(); n != wantSaved {
				t.Fatalf("%d codes stored, want %d", n, wantSaved)
			}
			if tc.record == nil {
				return
			}
			u, _ := url.Parse(loc)
			code := u.Query().Get("code")
			if !isBase64URLHash(code) {
				t.Errorf("code %q is not 256 bits of base64url", code)
			}
			rec, err := h.store.ConsumeCode(context.Background(), store.HashToken(code))
			if err != nil {
				t.Fatalf("ConsumeCode: %v", err)
			}
			ttl := h.srv.cfg.CodeTTL
			if rec.ExpiresAt.Before(before.Add(ttl)) || rec.ExpiresAt.After(after.Add(ttl)) {
				t.Errorf("ExpiresAt %v, want between %v and %v", rec.ExpiresAt, before.Add(ttl), after.Add(ttl))
			}
			if rec.GrantID == "" || rec.GrantID == code {
				t.Errorf("GrantID %q", rec.GrantID)
			}
			got := *rec
			got.GrantID, got.ExpiresAt = "", time.Time{}
			want := *tc.record
			if want.Resources == nil {
				// A request without resource parameters grants the
				// client's registered resources, or the issuer.
				want.Resources = []string{h.ts.URL}
				if want.ClientID == confID {
					want.Resources = []string{rvAudience, h.ts.URL}
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("stored code\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// checkAuthorizePage asserts the fixed HTML error page.
func checkAuthorizePage(t *testing.T, r response, absent []string) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s %q, want %q", k, got, want)
		}
	}
	if strings.Count(r.raw, "<html") != 1 || strings.Count(r.raw, "Authorization request refused") != 1 {
		t.Errorf("body is not the error page: %q", r.raw)
	}
	for _, s := range absent {
		if strings.Contains(r.raw, s) {
			t.Errorf("page contains %q: %q", s, r.raw)
		}
	}
	if r.status == http.StatusMethodNotAllowed && r.header.Get("Allow") != "GET, POST" {
		t.Errorf("Allow %q", r.header.Get("Allow"))
	}
}

// checkAuthorizeLocation asserts a redirect's target and its exact query.
func checkAuthorizeLocation(t *testing.T, h *harness, loc, wantBase string, want map[string]string) {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q: %v", loc, err)
	}
	if u.Fragment != "" || strings.Contains(loc, "#") {
		t.Errorf("Location %q has a fragment", loc)
	}
	if base := strings.SplitN(loc, "?", 2)[0]; base != wantBase {
		t.Fatalf("Location %q, want %q with a query", loc, wantBase)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		t.Fatalf("Location query %q: %v", u.RawQuery, err)
	}
	if len(q) != len(want) {
		t.Errorf("Location query %v, want the keys of %v", q, want)
	}
	for k, w := range want {
		vs := q[k]
		if len(vs) != 1 {
			t.Errorf("Location query %s = %q, want one value", k, vs)
			continue
		}
		switch w {
		case "*":
			if vs[0] == "" {
				t.Errorf("Location query %s is empty", k)
			}
		case "*issuer":
			if vs[0] != h.srv.cfg.Issuer || vs[0] != h.ts.URL {
				t.Errorf("iss %q, want %q", vs[0], h.ts.URL)
			}
		default:
			if vs[0] != w {
				t.Errorf("Location query %s = %q, want %q", k, vs[0], w)
			}
		}
	}
}

// TestAuthorizeRequestToAuthenticator checks what the host's Authenticator
// sees, and that changing it does not change the code.
func TestAuthorizeRequestToAuthenticator(t *testing.T) {
	var (
		mu   sync.Mutex
		seen AuthorizationRequest
	)
	h, _ := newAuthzHarness(t, func(c *Config) {
		c.Authenticate = func(_ http.ResponseWriter, r *http.Request, req *AuthorizationRequest) (string, bool, error) {
			mu.Lock()
			defer mu.Unlock()
			seen = *req
			seen.Scopes = append([]string(nil), req.Scopes...)
			if r.FormValue("client_id") != req.Client.ID {
				t.Errorf("r.FormValue(client_id) = %q", r.FormValue("client_id"))
			}
			req.Scopes[0] = "admin"
			req.RedirectURI = "https://evil.example/"
			req.DPoPJKT = ""
			return "bob", false, nil
		}
	})
	params := authzParams("response_type", "code", "client_id", pubID, "redirect_uri", authzLoopbackCB, "scope", "write",
		"state", "s1", "code_challenge", authzChallenge, "code_challenge_method", "S256", "dpop_jkt", authzJKT)
	r := h.authzRequest(http.MethodPost, params, "", "", nil)
	if r.status != http.StatusSeeOther {
		t.Fatalf("status %d %q", r.status, r.raw)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen.Client == nil || seen.Client.ID != pubID || seen.RedirectURI != authzLoopbackCB || len(seen.Scopes) != 1 || seen.Scopes[0] != "write" ||
		seen.State != "s1" || seen.CodeChallenge != authzChallenge || seen.CodeChallengeMethod != "S256" || seen.DPoPJKT != authzJKT {
		t.Errorf("Authenticator saw %+v", seen)
	}
	checkAuthorizeLocation(t, h, r.header.Get("Location"), authzLoopbackCB, codeQuery("s1"))
	u, _ := url.Parse(r.header.Get("Location"))
	rec, err := h.store.ConsumeCode(context.Background(), store.HashToken(u.Query().Get("code")))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Subject != "bob" || rec.Scope != "write" || rec.RedirectURI != authzLoopbackCB || rec.DPoPJKT != authzJKT {
		t.Errorf("stored %+v", rec)
	}

	// Omitted redirect_uri: the Authenticator gets the registered one.
	mu.Unlock()
	r = h.authzRequest(http.MethodGet, authzParams("response_type", "code", "client_id", confID), "", "", nil)
	mu.Lock()
	if r.status != http.StatusFound || seen.RedirectURI != redirectURI || len(seen.Scopes) != 2 {
		t.Errorf("status %d, Authenticator saw %+v", r.status, seen)
	}
}

// TestAuthorizeCodesDiffer checks that two requests get different codes and
// grants.
func TestAuthorizeCodesDiffer(t *testing.T) {
	h, _ := newAuthzHarness(t, nil)
	var codes, grants []string
	for range 2 {
		r := h.authzRequest(http.MethodGet, authzParams("response_type", "code", "client_id", confID), "", "", authzAlice)
		u, err := url.Parse(r.header.Get("Location"))
		if r.status != http.StatusFound || err != nil {
			t.Fatalf("status %d, %v", r.status, err)
		}
		code := u.Query().Get("code")
		rec, err := h.store.ConsumeCode(context.Background(), store.HashToken(code))
		if err != nil {
			t.Fatal(err)
		}
		codes, grants = append(codes, code), append(grants, rec.GrantID)
	}
	if codes[0] == codes[1] || grants[0] == grants[1] {
		t.Errorf("codes %q, grants %q", codes, grants)
	}
}

// TestAuthorizeLogs checks that refusals are logged and that the code never
// is.
func TestAuthorizeLogs(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	h, _ := newAuthzHarness(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&authzLogWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	r := h.authzRequest(http.MethodGet, authzParams("response_type", "code", "client_id", confID, "state", "s"), "", "", authzAlice)
	u, _ := url.Parse(r.header.Get("Location"))
	code := u.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %d %q", r.status, r.header.Get("Location"))
	}
	h.authzRequest(http.MethodGet, authzParams("response_type", "code", "client_id", "nobody"), "", "", authzAlice)
	mu.Lock()
	logs := buf.String()
	mu.Unlock()
	if strings.Contains(logs, code) || strings.Contains(logs, store.HashToken(code).String()) {
		t.Errorf("the code is logged: %s", logs)
	}
	if strings.Contains(logs, "wonderland") {
		t.Errorf("the password is logged: %s", logs)
	}
	if !strings.Contains(logs, "unknown client") || !strings.Contains(logs, "nobody") {
		t.Errorf("refusal not logged: %s", logs)
	}
}

type authzLogWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *authzLogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
