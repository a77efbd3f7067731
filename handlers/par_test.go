package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// parStore adds pushed authorization requests (store.PushedRequestStore)
// to the harness's store, with the clock of the test, and counts what it
// saves. consumeRace makes the next ConsumePushedRequest lose to a
// concurrent one.
type parStore struct {
	store.Store
	clock *parClock

	mu          sync.Mutex
	reqs        map[store.TokenHash]*parEntry
	saved       int
	saveErr     error
	getErr      error
	consumeRace bool
}

type parEntry struct {
	rec      store.PushedRequest
	consumed bool
}

func (s *parStore) SavePushedRequest(_ context.Context, h store.TokenHash, r *store.PushedRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.saveErr != nil {
		return s.saveErr
	}
	if _, dup := s.reqs[h]; dup {
		return errors.New("parStore: request_uri saved twice")
	}
	s.reqs[h] = &parEntry{rec: *r}
	s.saved++
	return nil
}

func (s *parStore) lookup(h store.TokenHash, consume bool) (*store.PushedRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.getErr != nil {
		return nil, s.getErr
	}
	e, ok := s.reqs[h]
	switch {
	case !ok:
		return nil, store.ErrNotFound
	case !s.clock.Now().Before(e.rec.ExpiresAt):
		return nil, store.ErrExpired
	case consume && s.consumeRace:
		s.consumeRace, e.consumed = false, true
		rec := e.rec
		return &rec, store.ErrConsumed
	case e.consumed:
		rec := e.rec
		return &rec, store.ErrConsumed
	}
	e.consumed = e.consumed || consume
	rec := e.rec
	return &rec, nil
}

func (s *parStore) GetPushedRequest(_ context.Context, h store.TokenHash) (*store.PushedRequest, error) {
	return s.lookup(h, false)
}

func (s *parStore) ConsumePushedRequest(_ context.Context, h store.TokenHash) (*store.PushedRequest, error) {
	return s.lookup(h, true)
}

func (s *parStore) savedRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saved
}

// record returns the stored request of a request_uri.
func (s *parStore) record(t *testing.T, uri string) store.PushedRequest {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.reqs[store.HashToken(uri)]
	if !ok {
		t.Fatalf("no record stored for %q", uri)
	}
	return e.rec
}

// parClock is the test's clock, which a test may move forward.
type parClock struct{ offset atomic.Int64 }

func (c *parClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *parClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// parPlainID is a confidential client with the code grant that is not
// DPoP-bound.
const (
	parPlainID     = "par-plain"
	parPlainSecret = "par-plain-secret-0123456789abcdef"
	parNoCodeID    = "par-nocode" // the same secret, a redirect URI, no code grant
)

// parHarness is a harness whose store keeps pushed requests.
type parHarness struct {
	*harness
	st    *parStore
	clock *parClock
}

func newPARHarness(t *testing.T, edit func(*Config)) *parHarness {
	t.Helper()
	clock := &parClock{}
	var st *parStore
	h := newHarness(t, func(c *Config) {
		st = &parStore{Store: c.Store, clock: clock, reqs: map[store.TokenHash]*parEntry{}}
		c.Store, c.Now = st, clock.Now
		if edit != nil {
			edit(c)
		}
	})
	for _, c := range []*store.Client{
		{ID: parPlainID, SecretHash: store.HashSecret(parPlainSecret),
			GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{redirectURI}, Scopes: []string{"read"}},
		{ID: parNoCodeID, SecretHash: store.HashSecret(parPlainSecret),
			GrantTypes: []string{"client_credentials"}, RedirectURIs: []string{redirectURI}, Scopes: []string{"read"}},
	} {
		if err := h.store.SaveClient(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	return &parHarness{harness: h, st: st, clock: clock}
}

var parChallenge = S256Challenge(testVerifier)

// parParams are the parameters of a valid pushed request of client, with
// kv added (a name already there is replaced).
func parParams(client string, kv ...string) url.Values {
	v := url.Values{
		"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirectURI}, "state": {"s-" + client},
		"scope": {"read"}, "code_challenge": {parChallenge}, "code_challenge_method": {"S256"},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// parProof is a proof by signer for a POST to the PAR endpoint.
func (h *parHarness) parProof(signer *dpop.Signer) string {
	h.t.Helper()
	return proofBy(h.t, signer, "POST", h.ts.URL+DefaultPaths.PushedAuthorization, dpop.ProofOptions{})
}

// confHeaders authenticate the confidential client, with a proof by the
// harness key.
func (h *parHarness) confHeaders() map[string]string {
	return map[string]string{"basic": confID + ":" + confSecret, "DPoP": h.parProof(h.signer)}
}

// push sends a pushed authorization request.
func (h *parHarness) push(params url.Values, headers map[string]string) response {
	h.t.Helper()
	return h.postForm(DefaultPaths.PushedAuthorization, params, headers)
}

// pushOK pushes a request and returns its request_uri.
func (h *parHarness) pushOK(params url.Values, headers map[string]string) string {
	h.t.Helper()
	r := h.push(params, headers)
	if r.status != http.StatusCreated || !strings.HasPrefix(r.str("request_uri"), requestURIPrefix) {
		h.t.Fatalf("PAR: got %d %s", r.status, r.raw)
	}
	return r.str("request_uri")
}

// authorizeURI sends the browser to the authorization endpoint with a
// request_uri; extra are further query parameters.
func (h *parHarness) authorizeURI(client, uri string, headers map[string]string, extra ...string) response {
	h.t.Helper()
	q := authzParams(append([]string{"client_id", client, "request_uri", uri}, extra...)...)
	return h.authzRequest(http.MethodGet, q, "", "", headers)
}

// codeOf returns the code of an authorization response, failing unless it
// is a redirect to want with that state.
func codeOf(t *testing.T, r response, want, state string) string {
	t.Helper()
	if r.status != http.StatusFound {
		t.Fatalf("authorize: got %d %q %s", r.status, r.header.Get("Location"), r.raw)
	}
	u, err := url.Parse(r.header.Get("Location"))
	if err != nil || strings.SplitN(u.String(), "?", 2)[0] != want {
		t.Fatalf("Location %q, want %s", r.header.Get("Location"), want)
	}
	q := u.Query()
	if q.Get("code") == "" || q.Get("state") != state || q.Get("error") != "" {
		t.Fatalf("Location %q: want a code and state %q", u, state)
	}
	return q.Get("code")
}

// wantPage asserts the authorization endpoint's error page, without a
// redirect.
func wantPage(t *testing.T, r response) {
	t.Helper()
	if r.status != http.StatusBadRequest || r.header.Get("Location") != "" {
		t.Fatalf("got %d Location %q %s, want the error page", r.status, r.header.Get("Location"), r.raw)
	}
	checkAuthorizePage(t, r, nil)
}

// PAR checklist: "POST only (other methods 405); client-authenticated;
// answer 201 {request_uri, expires_in} with N < 600 (60 is usual)".
func TestPARCreated(t *testing.T) {
	h := newPARHarness(t, nil)
	before := time.Now()
	r := h.push(parParams(confID), h.confHeaders())
	if r.status != http.StatusCreated {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	uri := r.str("request_uri")
	if !strings.HasPrefix(uri, requestURIPrefix) || !isBase64URLHash(strings.TrimPrefix(uri, requestURIPrefix)) {
		t.Errorf("request_uri %q: want the URN prefix and 256 bits of base64url", uri)
	}
	if r.body["expires_in"] != float64(60) || len(r.body) != 2 {
		t.Errorf("body %s, want request_uri and expires_in 60 only", r.raw)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", r.header)
	}
	rec := h.st.record(t, uri)
	if rec.ClientID != confID || rec.DPoPJKT != h.signer.JKT() {
		t.Errorf("record %+v", rec)
	}
	if exp := before.Add(time.Minute); rec.ExpiresAt.Before(exp) || rec.ExpiresAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("ExpiresAt %v, want a minute from now", rec.ExpiresAt)
	}
	params, err := url.ParseQuery(rec.Params)
	if err != nil {
		t.Fatal(err)
	}
	if want := parParams(confID); params.Encode() != want.Encode() {
		t.Errorf("params %q, want %q", rec.Params, want.Encode())
	}

	// Two requests get different request_uris.
	if again := h.pushOK(parParams(confID), h.confHeaders()); again == uri {
		t.Errorf("request_uri %q issued twice", uri)
	}
}

// Config.PARTTL is expires_in, and the record's lifetime.
func TestPARConfiguredTTL(t *testing.T) {
	h := newPARHarness(t, func(c *Config) { c.PARTTL = 90 * time.Second })
	r := h.push(parParams(confID), h.confHeaders())
	if r.status != http.StatusCreated || r.body["expires_in"] != float64(90) {
		t.Fatalf("got %d %s, want expires_in 90", r.status, r.raw)
	}
	if rec := h.st.record(t, r.str("request_uri")); time.Until(rec.ExpiresAt) < 85*time.Second {
		t.Errorf("ExpiresAt %v, want 90s from now", rec.ExpiresAt)
	}
}

// Client credentials are not kept with the pushed parameters.
func TestPARDropsClientCredentials(t *testing.T) {
	h := newPARHarness(t, nil)
	params := parParams(parPlainID, "client_secret", parPlainSecret)
	uri := h.pushOK(params, nil)
	rec := h.st.record(t, uri)
	if strings.Contains(rec.Params, parPlainSecret) || strings.Contains(rec.Params, "client_secret") {
		t.Errorf("params %q keep the client secret", rec.Params)
	}
	if v, _ := url.ParseQuery(rec.Params); v.Get("client_id") != parPlainID || rec.ClientID != parPlainID || rec.DPoPJKT != "" {
		t.Errorf("record %+v", rec)
	}

	// Basic authentication without client_id in the body: the record
	// names the client all the same.
	params.Del("client_secret")
	params.Del("client_id")
	uri = h.pushOK(params, map[string]string{"basic": parPlainID + ":" + parPlainSecret})
	if v, _ := url.ParseQuery(h.st.record(t, uri).Params); v.Get("client_id") != parPlainID {
		t.Errorf("params %q lack client_id", h.st.record(t, uri).Params)
	}
}

// PAR checklist: the refusals, each a JSON error, none storing a request.
func TestPARRefusals(t *testing.T) {
	other := newSigner(t)
	conf := func(h *parHarness) map[string]string { return h.confHeaders() }
	for _, tc := range []struct {
		name    string
		edit    func(*Config)
		fail    func(*parStore)
		method  string // default POST
		params  func(h *parHarness) url.Values
		headers func(h *parHarness) map[string]string
		status  int
		code    dpop.ErrorCode
	}{
		{name: "GET is refused with 405", method: http.MethodGet, params: func(*parHarness) url.Values { return parParams(confID) }, headers: conf,
			status: http.StatusMethodNotAllowed, code: dpop.CodeInvalidRequest},
		{name: "PUT is refused with 405", method: http.MethodPut, params: func(*parHarness) url.Values { return parParams(confID) }, headers: conf,
			status: http.StatusMethodNotAllowed, code: dpop.CodeInvalidRequest},
		{name: "request_uri inside the PAR body is refused", params: func(*parHarness) url.Values {
			return parParams(confID, "request_uri", requestURIPrefix+"x")
		}, headers: conf, status: http.StatusBadRequest, code: dpop.CodeInvalidRequest},
		{name: "a request object is refused, not ignored", params: func(*parHarness) url.Values {
			return parParams(confID, "request", "eyJhbGciOiJub25lIn0.e30.")
		}, headers: conf, status: http.StatusBadRequest, code: dpop.CodeRequestNotSupported},
		{name: "redirect_uri required", params: func(*parHarness) url.Values {
			v := parParams(parPlainID)
			v.Del("redirect_uri")
			return v
		}, status: http.StatusBadRequest, code: dpop.CodeInvalidRequest},
		{name: "redirect_uri not registered", params: func(*parHarness) url.Values {
			return parParams(parPlainID, "redirect_uri", "https://evil.example/cb")
		}, status: http.StatusBadRequest, code: dpop.CodeInvalidRequest},
		{name: "PKCE plain refused", params: func(*parHarness) url.Values {
			return parParams(parPlainID, "code_challenge_method", "plain")
		}, status: http.StatusBadRequest, code: dpop.CodeInvalidRequest},
		{name: "PKCE challenge without method refused", params: func(*parHarness) url.Values {
			v := parParams(parPlainID)
			v.Del("code_challenge_method")
			return v
		}, status: http.StatusBadRequest, code: dpop.CodeInvalidRequest},
		{name: "PKCE required of a public client", params: func(h *parHarness) url.Values {
			v := parParams(pubID)
			v.Del("code_challenge")
			v.Del("code_challenge_method")
			return v
		}, headers: func(h *parHarness) map[string]string { return map[string]string{"DPoP": h.parProof(h.signer)} },
			status: http.StatusBadRequest, code: dpop.CodeInvalidRequest},
		{name: "PKCE required with RequirePKCE", edit: func(c *Config) { c.RequirePKCE = true }, params: func(*parHarness) url.Values {
			v := parParams(parPlainID)
			v.Del("code_challenge")
			v.Del("code_challenge_method")
			return v
		}, status: http.StatusBadRequest, code: dpop.CodeInvalidRequest},
		{name: "response_type=code only: token refused", params: func(*parHarness) url.Values {
			return parParams(parPlainID, "response_type", "token")
		}, status: http.StatusBadRequest, code: dpop.CodeUnsupportedResponseType},
		{name: "response_type missing", params: func(*parHarness) url.Values {
			v := parParams(parPlainID)
			v.Del("response_type")
			return v
		}, status: http.StatusBadRequest, code: dpop.CodeInvalidRequest},
		{name: "unknown client", params: func(*parHarness) url.Values { return parParams("nobody", "client_secret", "whatever") },
			status: http.StatusUnauthorized, code: dpop.CodeInvalidClient},
		{name: "wrong client secret", params: func(*parHarness) url.Values { return parParams(parPlainID, "client_secret", "wrong") },
			status: http.StatusUnauthorized, code: dpop.CodeInvalidClient},
		{name: "confidential client without credentials", params: func(*parHarness) url.Values { return parParams(parPlainID) },
			headers: func(*parHarness) map[string]string { return map[string]string{} }, status: http.StatusUnauthorized, code: dpop.CodeInvalidClient},
		{name: "client without the code grant", params: func(*parHarness) url.Values { return parParams(parNoCodeID, "client_secret", parPlainSecret) },
			status: http.StatusBadRequest, code: dpop.CodeUnauthorizedClient},
		{name: "scope not registered", params: func(*parHarness) url.Values { return parParams(parPlainID, "scope", "read admin") },
			status: http.StatusBadRequest, code: dpop.CodeInvalidScope},
		{name: "scope policy failure", edit: func(c *Config) {
			c.ScopePolicy = func(context.Context, *store.Client, []string) ([]string, error) {
				return nil, errors.New("policy down")
			}
		}, params: func(*parHarness) url.Values { return parParams(parPlainID) }, status: http.StatusInternalServerError, code: dpop.CodeServerError},
		{name: "resource not registered", params: func(*parHarness) url.Values {
			return parParams(confID, "resource", "https://other.example/api")
		}, headers: conf, status: http.StatusBadRequest, code: dpop.CodeInvalidTarget},
		{name: "dpop_jkt malformed", params: func(*parHarness) url.Values { return parParams(parPlainID, "dpop_jkt", "not-a-thumbprint") },
			status: http.StatusBadRequest, code: dpop.CodeInvalidRequest},
		{name: "DPoP-bound client with neither a proof nor dpop_jkt", params: func(*parHarness) url.Values { return parParams(confID) },
			headers: func(*parHarness) map[string]string { return map[string]string{"basic": confID + ":" + confSecret} },
			status:  http.StatusBadRequest, code: dpop.CodeInvalidProof},
		{name: "DPoP header and dpop_jkt both present and different", params: func(*parHarness) url.Values {
			return parParams(confID, "dpop_jkt", other.JKT())
		}, headers: conf, status: http.StatusBadRequest, code: dpop.CodeInvalidProof},
		{name: "proof for the token endpoint's URL", params: func(*parHarness) url.Values { return parParams(confID) },
			headers: func(h *parHarness) map[string]string {
				return map[string]string{"basic": confID + ":" + confSecret, "DPoP": h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{})}
			}, status: http.StatusBadRequest, code: dpop.CodeInvalidProof},
		{name: "proof for GET", params: func(*parHarness) url.Values { return parParams(confID) },
			headers: func(h *parHarness) map[string]string {
				return map[string]string{"basic": confID + ":" + confSecret, "DPoP": h.proof("GET", DefaultPaths.PushedAuthorization, dpop.ProofOptions{})}
			}, status: http.StatusBadRequest, code: dpop.CodeInvalidProof},
		{name: "malformed proof", params: func(*parHarness) url.Values { return parParams(confID) },
			headers: func(h *parHarness) map[string]string {
				return map[string]string{"basic": confID + ":" + confSecret, "DPoP": "not.a.proof"}
			}, status: http.StatusBadRequest, code: dpop.CodeInvalidProof},
		{name: "repeated parameter", params: func(*parHarness) url.Values {
			v := parParams(parPlainID, "client_secret", parPlainSecret)
			v.Add("scope", "read")
			return v
		}, status: http.StatusBadRequest, code: dpop.CodeInvalidRequest},
		{name: "store failure", fail: func(s *parStore) { s.saveErr = errors.New("disk full") },
			params: func(*parHarness) url.Values { return parParams(parPlainID, "client_secret", parPlainSecret) },
			status: http.StatusServiceUnavailable, code: dpop.CodeServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newPARHarness(t, tc.edit)
			if tc.fail != nil {
				h.st.mu.Lock()
				tc.fail(h.st)
				h.st.mu.Unlock()
			}
			params := tc.params(h)
			headers := map[string]string{}
			if tc.headers != nil {
				headers = tc.headers(h)
			} else if params.Get("client_secret") == "" && params.Get("client_id") == parPlainID {
				params.Set("client_secret", parPlainSecret)
			}
			var r response
			if method := tc.method; method != "" {
				req, err := http.NewRequest(method, h.ts.URL+DefaultPaths.PushedAuthorization, strings.NewReader(params.Encode()))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				setHeaders(req, headers)
				r = h.do(req)
			} else {
				r = h.push(params, headers)
			}
			wantError(t, r, tc.status, tc.code)
			if r.status == http.StatusMethodNotAllowed && r.header.Get("Allow") != http.MethodPost {
				t.Errorf("Allow %q", r.header.Get("Allow"))
			}
			if r.header.Get("Location") != "" {
				t.Errorf("a PAR error is never a redirect: Location %q", r.header.Get("Location"))
			}
			if n := h.st.savedRequests(); n != 0 {
				t.Errorf("%d requests stored", n)
			}
		})
	}
}

// A refused request does not record its proof: once the request is right,
// the same proof is accepted. An accepted proof cannot be used again.
func TestPARProofAcceptedLast(t *testing.T) {
	h := newPARHarness(t, nil)
	headers := h.confHeaders()
	wantError(t, h.push(parParams(confID, "scope", "admin"), headers), http.StatusBadRequest, dpop.CodeInvalidScope)
	h.pushOK(parParams(confID), headers)
	wantError(t, h.push(parParams(confID), headers), http.StatusBadRequest, dpop.CodeInvalidProof)
}

// PAR checklist, DPoP at PAR (RFC 9449 §10.1): the key the code is bound
// to, from a header, a dpop_jkt or both.
func TestPARDPoPBinding(t *testing.T) {
	other := newSigner(t)
	for _, tc := range []struct {
		name    string
		client  string
		extra   []string
		proof   bool
		wantJKT func(h *parHarness) string
	}{
		{name: "DPoP header alone binds the code to its key", client: confID, proof: true, wantJKT: func(h *parHarness) string { return h.signer.JKT() }},
		{name: "DPoP header and matching dpop_jkt", client: confID, proof: true, extra: []string{"dpop_jkt", ""}, wantJKT: func(h *parHarness) string { return h.signer.JKT() }},
		{name: "dpop_jkt alone binds the code", client: confID, extra: []string{"dpop_jkt", other.JKT()}, wantJKT: func(*parHarness) string { return other.JKT() }},
		{name: "neither, for a client that is not DPoP-bound", client: parPlainID, wantJKT: func(*parHarness) string { return "" }},
		{name: "public client with a DPoP header", client: pubID, proof: true, wantJKT: func(h *parHarness) string { return h.signer.JKT() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newPARHarness(t, nil)
			extra := tc.extra
			if len(extra) == 2 && extra[0] == "dpop_jkt" && extra[1] == "" {
				extra = []string{"dpop_jkt", h.signer.JKT()}
			}
			headers := map[string]string{}
			switch tc.client {
			case confID:
				headers["basic"] = confID + ":" + confSecret
			case parPlainID:
				headers["basic"] = parPlainID + ":" + parPlainSecret
			}
			if tc.proof {
				headers["DPoP"] = h.parProof(h.signer)
			}
			uri := h.pushOK(parParams(tc.client, extra...), headers)
			if got, want := h.st.record(t, uri).DPoPJKT, tc.wantJKT(h); got != want {
				t.Errorf("DPoPJKT %q, want %q", got, want)
			}
		})
	}
}

// The whole flow: PAR with a DPoP header → authorization endpoint → code →
// token. The code is bound to the key of the PAR proof: another key is
// refused with invalid_grant, and the client and the code stay usable.
func TestPARFlow(t *testing.T) {
	h := newPARHarness(t, nil)
	uri := h.pushOK(parParams(confID), h.confHeaders())
	code := codeOf(t, h.authorizeURI(confID, uri, authzAlice), redirectURI, "s-"+confID)

	rec, err := h.store.GetCode(context.Background(), store.HashToken(code))
	if err != nil {
		t.Fatal(err)
	}
	if rec.ClientID != confID || rec.DPoPJKT != h.signer.JKT() || rec.RedirectURI != redirectURI || rec.Scope != "read" ||
		rec.CodeChallenge != parChallenge || rec.Subject != "alice" {
		t.Errorf("code record %+v", rec)
	}

	form := codeForm(code)
	otherProof := proofBy(t, newSigner(t), "POST", h.ts.URL+DefaultPaths.Token, dpop.ProofOptions{})
	wantError(t, h.postForm(DefaultPaths.Token, form, map[string]string{"basic": confID + ":" + confSecret, "DPoP": otherProof}),
		http.StatusBadRequest, dpop.CodeInvalidGrant)
	tok := wantToken(t, h.tokenRequest(form), TokenTypeDPoP)
	at, err := h.accessRecord(tok.str("access_token"))
	if err != nil || at.JKT != h.signer.JKT() || at.Subject != "alice" {
		t.Errorf("access token %+v, %v", at, err)
	}
}

// The flow of a public client, with POST at the authorization endpoint.
func TestPARFlowPublicClientPOST(t *testing.T) {
	h := newPARHarness(t, nil)
	uri := h.pushOK(parParams(pubID), map[string]string{"DPoP": h.parProof(h.signer)})
	r := h.authzRequest(http.MethodPost, authzParams("client_id", pubID, "request_uri", uri), "", "", authzAlice)
	if r.status != http.StatusSeeOther {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	u, _ := url.Parse(r.header.Get("Location"))
	form := codeForm(u.Query().Get("code"))
	wantToken(t, h.publicTokenRequest(form, h.signer), TokenTypeDPoP)
}

// PAR checklist, at the authorization endpoint.
func TestPARAuthorize(t *testing.T) {
	t.Run("loading the page twice before login still works", func(t *testing.T) {
		h := newPARHarness(t, nil)
		uri := h.pushOK(parParams(confID), h.confHeaders())
		for range 2 {
			r := h.authorizeURI(confID, uri, map[string]string{"X-Login": "redirect"})
			if r.status != http.StatusFound || r.header.Get("Location") != "/login" {
				t.Fatalf("got %d %q, want the host's login redirect", r.status, r.header.Get("Location"))
			}
		}
		// A denial does not spend it either.
		r := h.authorizeURI(confID, uri, map[string]string{})
		checkAuthorizeLocation(t, h.harness, r.header.Get("Location"), redirectURI, errQuery(dpop.CodeAccessDenied, "s-"+confID))
		codeOf(t, h.authorizeURI(confID, uri, authzAlice), redirectURI, "s-"+confID)
	})
	t.Run("single use: reused request_uri after the code was issued is refused", func(t *testing.T) {
		h := newPARHarness(t, nil)
		uri := h.pushOK(parParams(confID), h.confHeaders())
		codeOf(t, h.authorizeURI(confID, uri, authzAlice), redirectURI, "s-"+confID)
		wantPage(t, h.authorizeURI(confID, uri, authzAlice))
		wantPage(t, h.authorizeURI(confID, uri, map[string]string{"X-Login": "redirect"}))
	})
	t.Run("a request_uri spent by a concurrent authorization is refused", func(t *testing.T) {
		h := newPARHarness(t, nil)
		uri := h.pushOK(parParams(confID), h.confHeaders())
		h.st.mu.Lock()
		h.st.consumeRace = true
		h.st.mu.Unlock()
		r := h.authorizeURI(confID, uri, authzAlice)
		checkAuthorizeLocation(t, h.harness, r.header.Get("Location"), redirectURI, errQuery(dpop.CodeInvalidRequestURI, "s-"+confID))
		wantPage(t, h.authorizeURI(confID, uri, authzAlice))
	})
	t.Run("a request_uri belongs to the client that pushed it", func(t *testing.T) {
		h := newPARHarness(t, nil)
		uri := h.pushOK(parParams(confID), h.confHeaders())
		wantPage(t, h.authorizeURI(pubID, uri, authzAlice))
		wantPage(t, h.authorizeURI(parPlainID, uri, authzAlice))
		// The owner still can use it.
		codeOf(t, h.authorizeURI(confID, uri, authzAlice), redirectURI, "s-"+confID)
	})
	t.Run("expired request_uri is refused", func(t *testing.T) {
		h := newPARHarness(t, nil)
		uri := h.pushOK(parParams(confID), h.confHeaders())
		h.clock.advance(61 * time.Second)
		wantPage(t, h.authorizeURI(confID, uri, authzAlice))
	})
	t.Run("expired by the server's clock though the store still returns it", func(t *testing.T) {
		h := newPARHarness(t, nil)
		uri := h.pushOK(parParams(confID), h.confHeaders())
		h.st.mu.Lock()
		h.st.clock = &parClock{} // the store's clock stays behind
		h.st.mu.Unlock()
		h.clock.advance(61 * time.Second)
		wantPage(t, h.authorizeURI(confID, uri, authzAlice))
	})
	t.Run("unknown request_uri is refused", func(t *testing.T) {
		h := newPARHarness(t, nil)
		wantPage(t, h.authorizeURI(confID, requestURIPrefix+randomToken(), authzAlice))
	})
	t.Run("request_uri without client_id is refused", func(t *testing.T) {
		h := newPARHarness(t, nil)
		uri := h.pushOK(parParams(confID), h.confHeaders())
		wantPage(t, h.authzRequest(http.MethodGet, authzParams("request_uri", uri), "", "", authzAlice))
		codeOf(t, h.authorizeURI(confID, uri, authzAlice), redirectURI, "s-"+confID)
	})
	t.Run("repeated request_uri is refused", func(t *testing.T) {
		h := newPARHarness(t, nil)
		uri := h.pushOK(parParams(confID), h.confHeaders())
		wantPage(t, h.authorizeURI(confID, uri, authzAlice, "request_uri", uri))
	})
	t.Run("store failure is a page", func(t *testing.T) {
		h := newPARHarness(t, nil)
		uri := h.pushOK(parParams(confID), h.confHeaders())
		h.st.mu.Lock()
		h.st.getErr = errors.New("connection refused")
		h.st.mu.Unlock()
		r := h.authorizeURI(confID, uri, authzAlice)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Location") != "" {
			t.Fatalf("got %d %q", r.status, r.header.Get("Location"))
		}
		checkAuthorizePage(t, r, []string{"connection refused"})
	})
	t.Run("duplicated parameters in the query are tolerated and the pushed values win", func(t *testing.T) {
		h := newPARHarness(t, nil)
		uri := h.pushOK(parParams(confID, "scope", "write"), h.confHeaders())
		r := h.authorizeURI(confID, uri, authzAlice,
			"response_type", "token", "response_type", "code token",
			"scope", "read", "scope", "admin",
			"redirect_uri", "https://evil.example/cb", "redirect_uri", redirectURI,
			"state", "forged", "dpop_jkt", newSigner(t).JKT(),
			"code_challenge", S256Challenge("another verifier, another challenge......"), "code_challenge_method", "plain")
		code := codeOf(t, r, redirectURI, "s-"+confID)
		rec, err := h.store.GetCode(context.Background(), store.HashToken(code))
		if err != nil {
			t.Fatal(err)
		}
		if rec.Scope != "write" || rec.RedirectURI != redirectURI || rec.DPoPJKT != h.signer.JKT() || rec.CodeChallenge != parChallenge {
			t.Errorf("code record %+v: want the pushed values", rec)
		}
	})
	t.Run("the Authenticator sees the pushed request", func(t *testing.T) {
		var (
			mu   sync.Mutex
			seen AuthorizationRequest
		)
		h := newPARHarness(t, func(c *Config) {
			c.Authenticate = func(_ http.ResponseWriter, _ *http.Request, req *AuthorizationRequest) (string, bool, error) {
				mu.Lock()
				defer mu.Unlock()
				seen = *req
				return "bob", false, nil
			}
		})
		uri := h.pushOK(parParams(confID), h.confHeaders())
		codeOf(t, h.authorizeURI(confID, uri, nil, "state", "forged"), redirectURI, "s-"+confID)
		mu.Lock()
		defer mu.Unlock()
		if seen.Client == nil || seen.Client.ID != confID || seen.RedirectURI != redirectURI || seen.State != "s-"+confID ||
			seen.DPoPJKT != h.signer.JKT() || seen.CodeChallenge != parChallenge || len(seen.Scopes) != 1 || seen.Scopes[0] != "read" {
			t.Errorf("Authenticator saw %+v", seen)
		}
	})
	t.Run("request_uri without PAR in the store is refused", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.Store = noPARStore{c.Store} })
		wantPage(t, h.authzRequest(http.MethodGet, authzParams("client_id", confID, "request_uri", requestURIPrefix+randomToken(),
			"response_type", "code", "redirect_uri", redirectURI), "", "", authzAlice))
	})
}

// PAR checklist: "A request that did not go through PAR is refused (error
// page, or a redirect with invalid_request)".
func TestPARRequired(t *testing.T) {
	h := newPARHarness(t, func(c *Config) { c.RequirePAR = true })
	plain := authzParams("response_type", "code", "client_id", confID, "redirect_uri", redirectURI, "state", "st",
		"code_challenge", parChallenge, "code_challenge_method", "S256")
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		r := h.authzRequest(method, plain, "", "", authzAlice)
		want := redirectURI
		if r.status != http.StatusFound && r.status != http.StatusSeeOther {
			t.Fatalf("%s: got %d %s", method, r.status, r.raw)
		}
		checkAuthorizeLocation(t, h.harness, r.header.Get("Location"), want, errQuery(dpop.CodeInvalidRequest, "st"))
	}
	// An unknown client still gets the page.
	wantPage(t, h.authzRequest(http.MethodGet, authzParams("response_type", "code", "client_id", "nobody"), "", "", authzAlice))
	// Through PAR it works.
	uri := h.pushOK(parParams(confID), h.confHeaders())
	codeOf(t, h.authorizeURI(confID, uri, authzAlice), redirectURI, "s-"+confID)
}

// noPARStore hides the PushedRequestStore of the store it wraps (if any):
// an embedded interface brings only its own methods.
type noPARStore struct{ store.Store }

// Metadata checklist: pushed_authorization_request_endpoint and
// require_pushed_authorization_requests.
func TestPARMetadata(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edit     func(*Config)
		noPAR    bool
		endpoint bool
		require  any
	}{
		{name: "PAR offered", endpoint: true, require: nil},
		{name: "RequirePAR advertised", edit: func(c *Config) { c.RequirePAR = true }, endpoint: true, require: true},
		{name: "store without PAR", noPAR: true},
		{name: "no authorization endpoint", edit: func(c *Config) { c.Authenticate = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h *harness
			if tc.noPAR {
				h = newHarness(t, func(c *Config) { c.Store = noPARStore{c.Store} })
			} else {
				h = newPARHarness(t, tc.edit).harness
			}
			r := h.mdRequest(http.MethodGet, DefaultPaths.Metadata)
			if r.status != http.StatusOK {
				t.Fatalf("got %d %s", r.status, r.raw)
			}
			ep, hasEP := r.body["pushed_authorization_request_endpoint"]
			if tc.endpoint != hasEP || (hasEP && ep != h.ts.URL+"/oauth2/par") {
				t.Errorf("pushed_authorization_request_endpoint %v (present %v)", ep, hasEP)
			}
			if got := r.body["require_pushed_authorization_requests"]; got != tc.require {
				t.Errorf("require_pushed_authorization_requests %v, want %v", got, tc.require)
			}
			// The endpoint is mounted exactly when it is advertised.
			pr := h.postForm(DefaultPaths.PushedAuthorization, parParams(parPlainID), nil)
			if (pr.status == http.StatusNotFound) == tc.endpoint {
				t.Errorf("PAR endpoint answers %d, advertised %v", pr.status, tc.endpoint)
			}
			if got := h.srv.MountPaths().PushedAuthorization; (got != "") != tc.endpoint {
				t.Errorf("MountPaths().PushedAuthorization %q", got)
			}
		})
	}
}

// The handler of a server without PAR answers 404 when mounted by hand.
func TestPARHandlerWithoutStore(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Store = noPARStore{c.Store} })
	mux := http.NewServeMux()
	mux.Handle("/par", h.srv.PushedAuthorizationHandler())
	req, _ := http.NewRequest(http.MethodPost, "/par", strings.NewReader(parParams(confID).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "invalid_request") {
		t.Errorf("got %d %s", w.Code, w.Body.String())
	}
}

// PAR configuration: RequirePAR needs the store's support; PARTTL bounds;
// the path's default.
func TestPARConfig(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	withPAR := &parStore{Store: m, clock: &parClock{}, reqs: map[store.TokenHash]*parEntry{}}
	const iss = "https://as.example"
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string // "" for success
	}{
		{"RequirePAR with a store without PAR", Config{Issuer: iss, Store: noPARStore{m}, RequirePAR: true, Authenticate: testAuthenticate},
			"handlers: Config.RequirePAR needs a Config.Store that implements store.PushedRequestStore"},
		{"RequirePAR with PAR", Config{Issuer: iss, Store: withPAR, RequirePAR: true, Authenticate: testAuthenticate}, ""},
		{"PARTTL over 10 minutes", Config{Issuer: iss, Store: withPAR, PARTTL: 10*time.Minute + time.Second}, "handlers: PARTTL must be at least a second and less than 10 minutes"},
		{"PARTTL under a second", Config{Issuer: iss, Store: withPAR, PARTTL: time.Millisecond}, "handlers: PARTTL must be at least a second and less than 10 minutes"},
		{"negative PARTTL", Config{Issuer: iss, Store: withPAR, PARTTL: -time.Second}, "handlers: PARTTL must be at least a second and less than 10 minutes"},
		{"PARTTL of 10 minutes (expires_in 600)", Config{Issuer: iss, Store: withPAR, PARTTL: 10 * time.Minute}, "handlers: PARTTL must be at least a second and less than 10 minutes"},
		{"PARTTL of 599 seconds", Config{Issuer: iss, Store: withPAR, PARTTL: 599 * time.Second}, ""},
		{"PAR path without slash", Config{Issuer: iss, Store: withPAR, Paths: Paths{PushedAuthorization: "par"}}, `handlers: path "par" must start with / and have no query`},
		{"PAR path with a query", Config{Issuer: iss, Store: withPAR, Paths: Paths{PushedAuthorization: "/par?x"}}, `handlers: path "/par?x" must start with / and have no query`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("New: %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.cfg.PARTTL == 0 || s.cfg.Paths.PushedAuthorization != "/oauth2/par" {
				t.Errorf("PARTTL %v, path %q", s.cfg.PARTTL, s.cfg.Paths.PushedAuthorization)
			}
		})
	}
	s, err := New(Config{Issuer: iss, Store: withPAR, Authenticate: testAuthenticate})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.PARTTL != DefaultPARTTL || DefaultPARTTL != time.Minute || DefaultPaths.PushedAuthorization != "/oauth2/par" {
		t.Errorf("PARTTL %v, DefaultPARTTL %v, default path %q", s.cfg.PARTTL, DefaultPARTTL, DefaultPaths.PushedAuthorization)
	}
}

// The PAR endpoint of an issuer with a path is under that path, where
// metadata says, and a proof is checked against that URL.
func TestPARMountIssuerPath(t *testing.T) {
	for _, tc := range []struct {
		name  string
		path  string
		paths Paths
		want  string
	}{
		{"one segment", "/tenant1", Paths{}, "/tenant1/oauth2/par"},
		{"configured path", "/org/tenant1", Paths{PushedAuthorization: "/push"}, "/org/tenant1/push"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newPARHarness(t, func(c *Config) {
				c.Issuer += tc.path
				c.Paths = tc.paths
			})
			if got := h.srv.MountPaths().PushedAuthorization; got != tc.want {
				t.Fatalf("MountPaths().PushedAuthorization %q, want %q", got, tc.want)
			}
			var rec recordingRouter
			h.srv.Mount(&rec)
			if n := len(rec.patterns); n == 0 || rec.patterns[n-1] != tc.want {
				t.Errorf("Mount registered %q, want %q last", rec.patterns, tc.want)
			}
			md := h.mdRequest(http.MethodGet, DefaultPaths.Metadata+tc.path)
			if got := md.str("pushed_authorization_request_endpoint"); got != h.ts.URL+tc.want {
				t.Errorf("pushed_authorization_request_endpoint %q, want %q", got, h.ts.URL+tc.want)
			}
			headers := map[string]string{"basic": confID + ":" + confSecret,
				"DPoP": proofBy(t, h.signer, "POST", h.ts.URL+tc.want, dpop.ProofOptions{})}
			if r := h.postForm(tc.want, parParams(confID), headers); r.status != http.StatusCreated {
				t.Errorf("PAR at %s: got %d %s", tc.want, r.status, r.raw)
			}
			if r := h.postForm("/oauth2/par", parParams(parPlainID, "client_secret", parPlainSecret), nil); r.status != http.StatusNotFound {
				t.Errorf("unprefixed path: got %d, want 404", r.status)
			}
		})
	}
}

// The memory store keeps pushed requests itself: the plain harness offers
// PAR, and the flow works end to end on it, once.
func TestPARMemoryStore(t *testing.T) {
	h := &parHarness{harness: newHarness(t, nil)}
	if _, ok := any(h.store).(store.PushedRequestStore); !ok || !h.srv.parOffered() {
		t.Fatal("the memory store does not offer PAR")
	}
	uri := h.pushOK(parParams(confID), h.confHeaders())
	code := codeOf(t, h.authorizeURI(confID, uri, authzAlice), redirectURI, "s-"+confID)
	wantPage(t, h.authorizeURI(confID, uri, authzAlice))
	wantToken(t, h.tokenRequest(codeForm(code)), TokenTypeDPoP)
}

// A private_key_jwt client's assertion is not kept with the pushed
// parameters.
func TestPARDropsClientAssertion(t *testing.T) {
	es := key(t, "ec256", "ES256", "es")
	h := newPARHarness(t, nil)
	cl := &store.Client{ID: pkjID, JWKS: jwksOf(t, es), GrantTypes: []string{"authorization_code"},
		RedirectURIs: []string{redirectURI}, Scopes: []string{"read"}}
	if err := h.store.SaveClient(context.Background(), cl); err != nil {
		t.Fatal(err)
	}
	p := parParams(pkjID)
	for k, v := range assertionForm(assertionFor(t, es, pkjID, h.ts.URL, h.clock.Now(), nil)) {
		p[k] = v
	}
	rec := h.st.record(t, h.pushOK(p, nil))
	if strings.Contains(rec.Params, "client_assertion") || rec.ClientID != pkjID {
		t.Errorf("record %+v keeps the assertion", rec)
	}
	if v, _ := url.ParseQuery(rec.Params); v.Encode() != parParams(pkjID).Encode() {
		t.Errorf("params %q, want %q", rec.Params, parParams(pkjID).Encode())
	}
}
