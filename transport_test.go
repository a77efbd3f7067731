package dpop

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
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
		checkUntouched := untouched(req)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Body"); got != tc.body {
			t.Errorf("%s %s: server got body %q, want %q", tc.method, tc.path, got, tc.body)
		}
		checkUntouched(t)
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

// fakeBase answers the n-th request (from 1) with resp(n), or, when step is
// set, with step(n) and its error. It records the requests and reads and
// closes their bodies, as a RoundTripper must.
type fakeBase struct {
	mu     sync.Mutex
	reqs   []*http.Request
	bodies []string
	resp   func(n int) *http.Response
	step   func(n int) (*http.Response, error)
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
	if f.step != nil {
		return f.step(n)
	}
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

// hop is what a test server saw of one request.
type hop struct {
	server, method, path, auth, body string
	proofs                           int    // DPoP header fields
	htu                              string // of the proof
	ath                              string
	hasATH                           bool
}

// hopLog records the requests of several test servers, in order.
type hopLog struct {
	mu   sync.Mutex
	hops []hop
}

func (l *hopLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hops = nil
}

func (l *hopLog) all() []hop {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.hops)
}

// handler records each request as server name; a request with the query
// parameters to and status is answered with that redirect.
func (l *hopLog) handler(t *testing.T, name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h := hop{server: name, method: r.Method, path: r.URL.Path, body: string(body),
			auth: strings.Join(r.Header.Values("Authorization"), ", ")}
		vals := r.Header.Values("DPoP")
		h.proofs = len(vals)
		if len(vals) == 1 {
			check := &errorCounter{T: t}
			d := decodeProof(check, vals[0])
			verifyWithHeaderJWK(check, vals[0], d)
			h.htu = d.claim("htu")
			h.ath = d.claim("ath")
			_, h.hasATH = d.claims["ath"]
		}
		l.mu.Lock()
		l.hops = append(l.hops, h)
		l.mu.Unlock()
		if to := r.URL.Query().Get("to"); to != "" {
			status, _ := strconv.Atoi(r.URL.Query().Get("status"))
			http.Redirect(w, r, to, status)
		}
	})
}

// routingTransport sends requests for made-up host:port pairs to test
// servers: plain[addr] for http, tlsRoutes[addr] for https, so that a test
// can change only the scheme, the host or the port of a URL.
func routingTransport(plain, tlsRoutes map[string]string, tlsConfig *tls.Config) *http.Transport {
	var d net.Dialer
	route := func(m map[string]string, addr string) (string, error) {
		if a, ok := m[strings.ToLower(addr)]; ok {
			return a, nil
		}
		return "", fmt.Errorf("test: no route to %s", addr)
	}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			a, err := route(plain, addr)
			if err != nil {
				return nil, err
			}
			return d.DialContext(ctx, network, a)
		},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			a, err := route(tlsRoutes, addr)
			if err != nil {
				return nil, err
			}
			c, err := d.DialContext(ctx, network, a)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(c, tlsConfig)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		},
	}
}

// reauthorize puts the token on every request, redirects included, as the
// Transport of golang.org/x/oauth2 does in front of a dpop.Transport.
type reauthorize struct {
	token string
	next  http.RoundTripper
}

func (a reauthorize) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "DPoP "+a.token)
	return a.next.RoundTrip(r)
}

// An access token and a proof bound to it (ath) go only to the origin the
// token was sent to first, whatever the redirects (RFC 9449 §7, RFC 6750
// §5.3): http.Client keeps Authorization when only the port or the scheme
// changes or the new host is a subdomain, and a RoundTripper in front of the
// Transport may add it to every request.
func TestTransportTokenStaysWithinOrigin(t *testing.T) {
	const token = "tok-origin"
	var log hopLog
	first := httptest.NewServer(log.handler(t, "first"))
	defer first.Close()
	other := httptest.NewServer(log.handler(t, "other"))
	defer other.Close()
	secure := httptest.NewTLSServer(log.handler(t, "secure"))
	defer secure.Close()
	tlsConfig := secure.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsConfig.ServerName = "example.com" // in the certificate of httptest

	addr := func(s *httptest.Server) string { return s.Listener.Addr().String() }
	base := routingTransport(map[string]string{
		"rs.test:8080":     addr(first),
		"rs.test:80":       addr(first),
		"rs.test:8081":     addr(other), // same host, other port
		"evil.test:8080":   addr(other), // other host
		"sub.rs.test:8080": addr(other), // subdomain: http.Client keeps Authorization
	}, map[string]string{
		"rs.test:8080": addr(secure), // same host and port, other scheme
		"rs.test:8443": addr(secure),
	}, tlsConfig)
	defer base.CloseIdleConnections()
	tr := NewTransport(newTransportSigner(t), base)

	tests := []struct {
		name, from, to string
		sameOrigin     bool
		landsOn        string // server that gets the redirected request
		// clientDrops: http.Client itself drops an Authorization set on the
		// request, since the host differs in case.
		clientDrops bool
	}{
		{"same host other port", "http://rs.test:8080/start", "http://rs.test:8081/land", false, "other", false},
		{"other scheme", "http://rs.test:8080/start", "https://rs.test:8080/land", false, "secure", false},
		{"https to http", "https://rs.test:8443/start", "http://rs.test:8080/land", false, "first", false},
		{"other host", "http://rs.test:8080/start", "http://evil.test:8080/land", false, "other", false},
		{"subdomain", "http://rs.test:8080/start", "http://sub.rs.test:8080/land", false, "other", false},
		{"same origin", "http://rs.test:8080/start", "http://rs.test:8080/land", true, "first", false},
		{"same origin, relative", "http://rs.test:8080/start", "/land", true, "first", false},
		{"same origin, default port", "http://rs.test:80/start", "http://rs.test/land", true, "first", false},
		{"same origin, case of host", "http://rs.test:80/start", "http://RS.Test/land", true, "first", true},
		{"same origin over https", "https://rs.test:8443/start", "https://rs.test:8443/land", true, "secure", false},
	}
	for _, tc := range tests {
		for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
			for _, layer := range []bool{false, true} {
				name := fmt.Sprintf("%s/%d/header on request", tc.name, status)
				if layer {
					name = fmt.Sprintf("%s/%d/header added per hop", tc.name, status)
				}
				t.Run(name, func(t *testing.T) {
					log.reset()
					const body = "payload"
					req, err := http.NewRequest("POST", tc.from+"?"+url.Values{"to": {tc.to}, "status": {fmt.Sprint(status)}}.Encode(), strings.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					client := &http.Client{Transport: tr}
					if layer {
						client.Transport = reauthorize{token: token, next: tr}
					} else {
						req.Header.Set("Authorization", "DPoP "+token)
					}
					req.Header.Set("X-Other", "kept")
					checkUntouched := untouched(req)

					resp, err := client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("status %d, want 200 after the redirect", resp.StatusCode)
					}
					hops := log.all()
					if len(hops) != 2 {
						t.Fatalf("servers saw %d requests, want 2: %+v", len(hops), hops)
					}
					start, land := hops[0], hops[1]
					if start.auth != "DPoP "+token || !start.hasATH || start.ath != sha256B64(token) {
						t.Errorf("first request: Authorization %q, ath %q; want the token and its ath", start.auth, start.ath)
					}
					if land.server != tc.landsOn || land.path != "/land" || land.method != "POST" || land.body != body {
						t.Errorf("redirected request went to %s %s %s with body %q", land.server, land.method, land.path, land.body)
					}
					if land.proofs != 1 {
						t.Fatalf("redirected request has %d DPoP headers, want 1", land.proofs)
					}
					target, _ := url.Parse(tc.from)
					target, _ = target.Parse(tc.to)
					if want := strings.ToLower(target.Scheme + "://" + target.Host + target.Path); strings.ToLower(land.htu) != want {
						t.Errorf("redirected proof htu = %q, want %q", land.htu, want)
					}
					if tc.sameOrigin && !(tc.clientDrops && !layer) {
						if land.auth != "DPoP "+token || !land.hasATH || land.ath != sha256B64(token) {
							t.Errorf("same-origin redirect: Authorization %q, ath %q; want the token and its ath", land.auth, land.ath)
						}
					} else if land.auth != "" || land.hasATH {
						t.Errorf("token leaked to %s: Authorization %q, proof with ath %v", land.server, land.auth, land.hasATH)
					}
					checkUntouched(t)
				})
			}
		}
	}
}

// The origin of a redirect chain is found also through a base RoundTripper
// that leaves Response.Request unset; a chain that cannot be followed back
// counts as another origin.
func TestTransportRedirectWithBareBase(t *testing.T) {
	for _, tc := range []struct {
		location  string
		wantToken bool
	}{
		{"/next", true},
		{"https://rs.example/next", true},
		{"https://rs.example:8443/next", false},
		{"http://rs.example/next", false},
	} {
		base := &fakeBase{resp: func(n int) *http.Response {
			if n == 1 {
				return &http.Response{StatusCode: http.StatusTemporaryRedirect, Header: http.Header{"Location": {tc.location}}, Body: http.NoBody}
			}
			return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody}
		}}
		client := &http.Client{Transport: NewTransport(newTransportSigner(t), base)}
		req, _ := http.NewRequest("GET", "https://rs.example/start", nil)
		req.Header.Set("Authorization", "DPoP tok")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(base.reqs) != 2 {
			t.Fatalf("%s: base saw %d requests, want 2", tc.location, len(base.reqs))
		}
		second := base.reqs[1]
		d := decodeProof(t, second.Header.Get("DPoP"))
		_, hasATH := d.claims["ath"]
		gotToken := second.Header.Get("Authorization") == "DPoP tok"
		if gotToken != tc.wantToken || hasATH != tc.wantToken || len(second.Header.Values("Authorization")) > 1 {
			t.Errorf("%s: Authorization %q, ath %v; want token %v", tc.location, second.Header.Values("Authorization"), hasATH, tc.wantToken)
		}
	}

	// A redirected request whose chain is broken (no Response.Request).
	base := &fakeBase{resp: func(int) *http.Response {
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody}
	}}
	req, _ := http.NewRequest("GET", "https://rs.example/next", nil)
	req.Header.Set("Authorization", "DPoP tok")
	req.Response = &http.Response{StatusCode: http.StatusFound}
	resp, err := NewTransport(newTransportSigner(t), base).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := base.reqs[0].Header.Get("Authorization"); got != "" {
		t.Errorf("broken chain: Authorization %q sent", got)
	}
	if req.Header.Get("Authorization") != "DPoP tok" {
		t.Errorf("caller's Authorization removed")
	}
}

// untouched records the caller's request as it is before a round trip and
// returns a check that the Transport left it so: a RoundTripper must not
// modify the request it is given (net/http.RoundTripper), so it works on a
// clone (as x/oauth2's Transport does).
func untouched(req *http.Request) func(t *testing.T) {
	header, u, method := req.Header.Clone(), *req.URL, req.Method
	body, getBody := req.Body, reflect.ValueOf(req.GetBody).Pointer()
	return func(t *testing.T) {
		t.Helper()
		if !reflect.DeepEqual(req.Header, header) {
			t.Errorf("caller's header changed: %v, was %v", req.Header, header)
		}
		if *req.URL != u || req.Method != method || req.Response != nil {
			t.Errorf("caller's URL, method or Response changed")
		}
		if req.Body != body || reflect.ValueOf(req.GetBody).Pointer() != getBody {
			t.Errorf("caller's body or GetBody replaced")
		}
	}
}
