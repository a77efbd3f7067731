package dpop

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// serverProof checks the DPoP header of a request as a server would: exactly
// one, signed by the jwk it carries, typ dpop+jwt, htm and htu matching the
// request. It reports problems with t.Errorf, so it is safe in handlers.
func serverProof(t *testing.T, r *http.Request) (decodedProof, bool) {
	t.Helper()
	vals := r.Header.Values("DPoP")
	if len(vals) != 1 {
		t.Errorf("%s %s: %d DPoP headers, want 1", r.Method, r.URL, len(vals))
		return decodedProof{}, false
	}
	ok := true
	check := &errorCounter{T: t}
	d := decodeProof(check, vals[0])
	verifyWithHeaderJWK(check, vals[0], d)
	if d.headerString(check, "typ") != "dpop+jwt" {
		t.Errorf("typ is not dpop+jwt")
	}
	if got := d.claim("htm"); got != r.Method {
		t.Errorf("htm = %q, request method %q", got, r.Method)
	}
	if got, want := d.claim("htu"), "http://"+r.Host+r.URL.Path; got != want {
		t.Errorf("htu = %q, want %q", got, want)
	}
	if check.failed.Load() {
		ok = false
	}
	return d, ok
}

// errorCounter turns Fatal into Error, for helpers called from handlers.
type errorCounter struct {
	*testing.T
	failed atomic.Bool
}

func (e *errorCounter) Fatalf(format string, args ...any) {
	e.failed.Store(true)
	e.T.Errorf(format, args...)
	panic(http.ErrAbortHandler)
}

func (e *errorCounter) Fatal(args ...any) { e.Fatalf("%s", fmt.Sprint(args...)) }

func newTransportSigner(t *testing.T) *Signer {
	return newTestSigner(t, testP256(), SignerOptions{})
}

func useNonce400(w http.ResponseWriter, nonce string) {
	w.Header().Set("DPoP-Nonce", nonce)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusBadRequest)
	io.WriteString(w, `{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}`)
}

func TestTransportAddsProofAndLeavesRequestUntouched(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		d, _ := serverProof(t, r)
		if _, ok := d.claims["nonce"]; ok {
			t.Errorf("nonce sent before any was issued")
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Body", string(body))
	}))
	defer srv.Close()
	client := &http.Client{Transport: NewTransport(newTransportSigner(t), nil)}

	tests := []struct {
		method, path, body string
	}{
		{"GET", "/a?x=1#frag", ""},
		{"", "/b", ""},
		{"POST", "/token?q", "grant_type=authorization_code&code=abc"},
		{"PUT", "/c", "payload"},
		{"DELETE", "/", ""},
	}
	for _, tc := range tests {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Method = tc.method // NewRequest turns "" into GET
		req.Header.Set("DPoP", "stale-proof")
		req.Header.Set("Authorization", "DPoP tok")
		req.Header.Set("X-Other", "kept")
		wantHeader := req.Header.Clone()
		wantURL := *req.URL
		wantBody, wantGetBody := req.Body, req.GetBody
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Body"); got != tc.body {
			t.Errorf("%s %s: server got body %q, want %q", tc.method, tc.path, got, tc.body)
		}
		if !reflect.DeepEqual(req.Header, wantHeader) {
			t.Errorf("caller's header changed: %v, was %v", req.Header, wantHeader)
		}
		if *req.URL != wantURL || req.Method != tc.method {
			t.Errorf("caller's URL or method changed")
		}
		if req.Body != wantBody || reflect.ValueOf(req.GetBody).Pointer() != reflect.ValueOf(wantGetBody).Pointer() {
			t.Errorf("caller's body or GetBody replaced")
		}
	}
	if got := hits.Load(); got != int32(len(tests)) {
		t.Errorf("server saw %d requests, want %d", got, len(tests))
	}
}

func TestTransportATH(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := serverProof(t, r)
		if !ok {
			return
		}
		w.Header().Set("X-ATH", d.claim("ath"))
		_, present := d.claims["ath"]
		w.Header().Set("X-ATH-Present", fmt.Sprint(present))
	}))
	defer srv.Close()
	tr := &Transport{Signer: newTransportSigner(t)}
	tests := []struct {
		name, auth, token string // token "" means no ath expected
	}{
		{"none", "", ""},
		{"bearer", "Bearer tok-1", ""},
		{"basic", "Basic dXNlcjpwYXNz", ""},
		{"dpop", "DPoP tok-2", "tok-2"},
		{"lower case scheme", "dpop tok.3~x", "tok.3~x"},
		{"upper case scheme", "DPOP tok-4", "tok-4"},
		{"prefix of another scheme", "DPoPx tok-5", ""},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest("GET", srv.URL+"/resource", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if tc.token == "" {
			if resp.Header.Get("X-ATH-Present") != "false" {
				t.Errorf("%s: ath present", tc.name)
			}
			continue
		}
		if got := resp.Header.Get("X-ATH"); got != sha256B64(tc.token) {
			t.Errorf("%s: ath = %q, want %q", tc.name, got, sha256B64(tc.token))
		}
	}
}

func TestTransportRetriesTokenEndpointNonce(t *testing.T) {
	const form = "grant_type=authorization_code&code=SplxlOBeZQQYbYS6WxSbIA&redirect_uri=https%3A%2F%2Fclient.example.org%2Fcb&code_verifier=bEaL42izcC-o-xBk0K2vuJ6U-y1p9r_wW2dFWIWgjz-"
	var hits atomic.Int32
	var firstJTI string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		if string(body) != form {
			t.Errorf("attempt %d: body %q, want %q", n, body, form)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			t.Errorf("attempt %d: Content-Type %q", n, ct)
		}
		d, _ := serverProof(t, r)
		switch n {
		case 1:
			firstJTI = d.claim("jti")
			if _, ok := d.claims["nonce"]; ok {
				t.Error("first attempt carries a nonce")
			}
			useNonce400(w, "eyJ7S_zG.eyJH0-Z.HX4w-7v")
		case 2:
			if got := d.claim("nonce"); got != "eyJ7S_zG.eyJH0-Z.HX4w-7v" {
				t.Errorf("retry nonce = %q", got)
			}
			if d.claim("jti") == firstJTI {
				t.Error("retry reuses the jti")
			}
			io.WriteString(w, `{"access_token":"x","token_type":"DPoP"}`)
		default:
			t.Errorf("attempt %d", n)
		}
	}))
	defer srv.Close()
	client := &http.Client{Transport: NewTransport(newTransportSigner(t), http.DefaultTransport)}
	req, err := http.NewRequest("POST", srv.URL+"/token", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "access_token") {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
	if got := hits.Load(); got != 2 {
		t.Errorf("server saw %d requests, want 2", got)
	}
}

func TestTransportRetriesResourceNonce(t *testing.T) {
	tests := []struct {
		name      string
		challenge []string // WWW-Authenticate fields of the 401
		nonce     string   // DPoP-Nonce of the 401
		retry     bool
	}{
		{"quoted", []string{`DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`}, "n-1", true},
		{"token form, lower-case scheme", []string{`dpop error=use_dpop_nonce`}, "n-2", true},
		{"after other challenges", []string{`Bearer realm="x", Basic abc==, DPoP algs="ES256 PS256", error="use_dpop_nonce"`}, "n-3", true},
		{"second field", []string{`Bearer realm="x"`, `DPoP error="use_dpop_nonce"`}, "n-4", true},
		{"other error", []string{`DPoP error="invalid_token"`}, "n-5", false},
		{"bearer challenge", []string{`Bearer error="use_dpop_nonce"`}, "n-6", false},
		{"no nonce header", []string{`DPoP error="use_dpop_nonce"`}, "", false},
		{"nonce with a space", []string{`DPoP error="use_dpop_nonce"`}, "a b", false},
		{"repeated error", []string{`DPoP error="use_dpop_nonce", error="invalid_token"`}, "n-7", false},
		{"no challenge", nil, "n-8", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := hits.Add(1)
				d, _ := serverProof(t, r)
				if got := d.claim("ath"); got != sha256B64("at-1") {
					t.Errorf("attempt %d: ath = %q", n, got)
				}
				if n == 1 {
					for _, c := range tc.challenge {
						w.Header().Add("WWW-Authenticate", c)
					}
					if tc.nonce != "" {
						w.Header().Set("DPoP-Nonce", tc.nonce)
					}
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				if got := d.claim("nonce"); got != tc.nonce {
					t.Errorf("retry nonce = %q, want %q", got, tc.nonce)
				}
				io.WriteString(w, "ok")
			}))
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL+"/protectedresource", nil)
			req.Header.Set("Authorization", "DPoP at-1")
			resp, err := (&Transport{Signer: newTransportSigner(t)}).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			wantHits, wantStatus := int32(1), http.StatusUnauthorized
			if tc.retry {
				wantHits, wantStatus = 2, http.StatusOK
			}
			if hits.Load() != wantHits || resp.StatusCode != wantStatus {
				t.Errorf("server saw %d requests, caller got %d; want %d, %d", hits.Load(), resp.StatusCode, wantHits, wantStatus)
			}
		})
	}
}

func TestTransportRetriesOnlyOnce(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized} {
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := hits.Add(1)
			w.Header().Set("X-Attempt", fmt.Sprint(n))
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
				w.Header().Set("DPoP-Nonce", fmt.Sprint("nonce-", n))
				w.WriteHeader(status)
				fmt.Fprintf(w, "attempt %d", n)
				return
			}
			useNonce400(w, fmt.Sprint("nonce-", n))
		}))
		tr := NewTransport(newTransportSigner(t), nil)
		req, _ := http.NewRequest("POST", srv.URL+"/token", strings.NewReader("a=b"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if got := hits.Load(); got != 2 {
			t.Errorf("%d: server saw %d requests, want 2", status, got)
		}
		if resp.StatusCode != status || resp.Header.Get("X-Attempt") != "2" || len(body) == 0 {
			t.Errorf("%d: caller got %d from attempt %q, body %q; want the second response", status, resp.StatusCode, resp.Header.Get("X-Attempt"), body)
		}
	}
}

func TestTransportOther400Untouched(t *testing.T) {
	big := `{"error":"use_dpop_nonce","pad":"` + strings.Repeat("x", maxErrorBodyBytes) + `"}`
	tests := []struct{ name, body string }{
		{"other error", `{"error":"invalid_grant","error_description":"use_dpop_nonce is not it"}`},
		{"not JSON", `use_dpop_nonce`},
		{"error in another member", `{"Error":"use_dpop_nonce"}`},
		{"error not a string", `{"error":["use_dpop_nonce"]}`},
		{"larger than the read limit", big},
		{"empty", ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				w.Header().Set("DPoP-Nonce", "n")
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			req, _ := http.NewRequest("POST", srv.URL+"/token", strings.NewReader("a=b"))
			resp, err := NewTransport(newTransportSigner(t), nil).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(body) != tc.body {
				t.Errorf("body %d bytes (%v), want the %d bytes sent", len(body), err, len(tc.body))
			}
			if hits.Load() != 1 || resp.StatusCode != http.StatusBadRequest {
				t.Errorf("server saw %d requests, caller got %d; want 1, 400", hits.Load(), resp.StatusCode)
			}
		})
	}
}

// fakeBase answers every request with a copy of resp and records what it
// was given.
type fakeBase struct {
	mu     sync.Mutex
	reqs   []*http.Request
	bodies []string
	resp   func(n int) *http.Response
}

func (f *fakeBase) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body.Close()
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	f.bodies = append(f.bodies, string(body))
	n := len(f.reqs)
	f.mu.Unlock()
	return f.resp(n), nil
}

// trackedBody records Close.
type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return nil }

func TestTransportKeepsOriginalBodyCloser(t *testing.T) {
	orig := &trackedBody{Reader: strings.NewReader(`{"error":"invalid_client"}` + strings.Repeat(" ", 100))}
	base := &fakeBase{resp: func(int) *http.Response {
		h := http.Header{"Dpop-Nonce": {"n"}}
		return &http.Response{StatusCode: 400, Header: h, Body: orig}
	}}
	req, _ := http.NewRequest("POST", "https://as.example/token", strings.NewReader("x"))
	resp, err := NewTransport(newTransportSigner(t), base).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if len(b) != 126 || orig.closed.Load() {
		t.Errorf("read %d bytes, closed early %v", len(b), orig.closed.Load())
	}
	resp.Body.Close()
	if !orig.closed.Load() {
		t.Error("Close did not close the original body")
	}
}

func TestTransportNonReplayableBodyNotRetried(t *testing.T) {
	base := &fakeBase{resp: func(n int) *http.Response {
		rec := httptest.NewRecorder()
		useNonce400(rec, fmt.Sprint("n-", n))
		return rec.Result()
	}}
	tr := NewTransport(newTransportSigner(t), base)
	req, _ := http.NewRequest("POST", "https://as.example/token", nil)
	req.Body = io.NopCloser(strings.NewReader("once"))
	req.GetBody = nil
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(base.reqs) != 1 || resp.StatusCode != 400 || !strings.Contains(string(body), "use_dpop_nonce") {
		t.Fatalf("%d requests, status %d, body %q; want the first response as is", len(base.reqs), resp.StatusCode, body)
	}
	// The nonce is still learned for the next request.
	req2, _ := http.NewRequest("GET", "https://as.example/other", nil)
	if _, err := tr.RoundTrip(req2); err != nil {
		t.Fatal(err)
	}
	if got := decodeProof(t, base.reqs[1].Header.Get("DPoP")).claim("nonce"); got != "n-1" {
		t.Errorf("next request nonce = %q, want n-1", got)
	}
}

func TestTransportGetBodyFailure(t *testing.T) {
	base := &fakeBase{resp: func(n int) *http.Response {
		rec := httptest.NewRecorder()
		useNonce400(rec, "n")
		return rec.Result()
	}}
	req, _ := http.NewRequest("POST", "https://as.example/token", strings.NewReader("x"))
	req.GetBody = func() (io.ReadCloser, error) { return nil, errors.New("gone") }
	resp, err := NewTransport(newTransportSigner(t), base).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if len(base.reqs) != 1 || resp.StatusCode != 400 || !strings.Contains(string(body), "use_dpop_nonce") {
		t.Errorf("%d requests, status %d, body %q; want the first response", len(base.reqs), resp.StatusCode, body)
	}
}

func TestTransportNoncePerOrigin(t *testing.T) {
	newServer := func(prefix string) (*httptest.Server, *[]string, *sync.Mutex) {
		var mu sync.Mutex
		var got []string
		var n int
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d, _ := serverProof(t, r)
			mu.Lock()
			got = append(got, d.claim("nonce"))
			n++
			switch r.URL.Path {
			case "/bad":
				w.Header().Set("DPoP-Nonce", "has space")
			case "/long":
				w.Header().Set("DPoP-Nonce", strings.Repeat("a", maxNonceLength+1))
			case "/quiet":
			default:
				w.Header().Set("DPoP-Nonce", fmt.Sprint(prefix, n))
			}
			mu.Unlock()
		}))
		return srv, &got, &mu
	}
	a, aGot, aMu := newServer("a-")
	defer a.Close()
	b, bGot, bMu := newServer("b-")
	defer b.Close()
	tr := NewTransport(newTransportSigner(t), nil)
	do := func(u string) {
		t.Helper()
		req, _ := http.NewRequest("GET", u, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	do(a.URL + "/x")     // no nonce yet; learns a-1
	do(a.URL + "/quiet") // sends a-1; no new nonce
	do(b.URL + "/x")     // b has none; learns b-1
	do(a.URL + "/bad")   // sends a-1; invalid nonce ignored
	do(a.URL + "/long")  // sends a-1; too long, ignored
	do(a.URL + "/x")     // sends a-1; learns a-5
	do(a.URL + "/x")     // sends a-5
	do(b.URL + "/x")     // sends b-1
	aMu.Lock()
	defer aMu.Unlock()
	bMu.Lock()
	defer bMu.Unlock()
	if want := []string{"", "a-1", "a-1", "a-1", "a-1", "a-5"}; !reflect.DeepEqual(*aGot, want) {
		t.Errorf("origin a got nonces %q, want %q", *aGot, want)
	}
	if want := []string{"", "b-1"}; !reflect.DeepEqual(*bGot, want) {
		t.Errorf("origin b got nonces %q, want %q", *bGot, want)
	}
}

func TestNonceOrigin(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://AS.Example/token", "https://as.example"},
		{"https://as.example:443/x", "https://as.example"},
		{"https://as.example:8443/x", "https://as.example:8443"},
		{"http://as.example:80/x", "http://as.example"},
		{"http://as.example:443/x", "http://as.example:443"},
		{"https://[::1]:443/", "https://[::1]"},
	}
	for _, tc := range tests {
		u, _ := url.Parse(tc.in)
		if got := nonceOrigin(u); got != tc.want {
			t.Errorf("nonceOrigin(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestHasUseNonceChallenge(t *testing.T) {
	tests := []struct {
		field string
		want  bool
	}{
		{`DPoP error="use_dpop_nonce"`, true},
		{`DPoP error=use_dpop_nonce`, true},
		{`DPoP   ERROR = "use_dpop_nonce" `, true},
		{`DPoP realm="a,b", error="use_dpop_nonce"`, true},
		{`DPoP error_description="x \"error=use_dpop_nonce\"", error="use_dpop_nonce"`, true},
		{`Negotiate abc, DPoP error="use_dpop_nonce"`, true},
		{`Basic abc==,DPoP error="use_dpop_nonce"`, true},
		{`DPoP error="use_dpop_nonce`, false},
		{`DPoP error="invalid_token", error_description="use_dpop_nonce"`, false},
		{`DPoP error_description="error=\"use_dpop_nonce\""`, false},
		{`Bearer error="use_dpop_nonce"`, false},
		{`DPoPx error="use_dpop_nonce"`, false},
		{`error="use_dpop_nonce"`, false},
		{`DPoP error="use_dpop_nonce", error="use_dpop_nonce"`, false},
		{`DPoP error="use_dpop_nonce_x"`, false},
		{`DPoP @ error="use_dpop_nonce"`, false},
		{``, false},
	}
	for _, tc := range tests {
		if got := hasUseNonceChallenge([]string{tc.field}); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.field, got, tc.want)
		}
	}
}

func TestTransportRefusesWithoutSignerAndClosesBody(t *testing.T) {
	tests := []struct {
		name string
		tr   *Transport
		url  string
	}{
		{"no signer", &Transport{Base: &fakeBase{}}, "https://as.example/token"},
		{"bad scheme", &Transport{Signer: newTransportSigner(t), Base: &fakeBase{}}, "ftp://as.example/token"},
	}
	for _, tc := range tests {
		body := &trackedBody{Reader: strings.NewReader("x")}
		req, _ := http.NewRequest("POST", tc.url, body)
		resp, err := tc.tr.RoundTrip(req)
		if err == nil || resp != nil {
			t.Errorf("%s: RoundTrip = %v, %v; want an error", tc.name, resp, err)
		}
		if !body.closed.Load() {
			t.Errorf("%s: request body not closed", tc.name)
		}
		if n := len(tc.tr.Base.(*fakeBase).reqs); n != 0 {
			t.Errorf("%s: base saw %d requests", tc.name, n)
		}
	}
}

func TestTransportConcurrent(t *testing.T) {
	var (
		mu     sync.Mutex
		jtis   = map[string]bool{}
		issued = map[string]bool{}
		count  int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := serverProof(t, r)
		if !ok {
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		count++
		jti := d.claim("jti")
		if jtis[jti] {
			t.Errorf("jti %q reused", jti)
		}
		jtis[jti] = true
		next := fmt.Sprint("n", count)
		issued[next] = true
		if !issued[d.claim("nonce")] {
			useNonce400(w, next)
			return
		}
		w.Header().Set("DPoP-Nonce", next)
		w.Write(body)
	}))
	defer srv.Close()
	client := &http.Client{Transport: NewTransport(newTransportSigner(t), nil)}
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 5 {
				want := fmt.Sprintf("g%d-%d", g, i)
				resp, err := client.Post(srv.URL+"/token", "text/plain", bytes.NewBufferString(want))
				if err != nil {
					t.Error(err)
					return
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(got) != want {
					t.Errorf("got %d %q, want 200 %q", resp.StatusCode, got, want)
				}
			}
		})
	}
	wg.Wait()
}
