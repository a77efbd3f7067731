package dpop

import (
	"crypto/elliptic"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
)

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// verifyAssertion checks a client assertion's signature with the signer's
// public key, independently of ClientAssertion, and returns its header and
// claims.
func verifyAssertion(t *testing.T, s *Signer, a string) (header, claims map[string]any) {
	t.Helper()
	h, p, sig, ok := jose.Split(a)
	if !ok {
		t.Fatalf("not a compact JWS: %q", a)
	}
	spec, _ := jose.Lookup(s.Algorithm())
	raw, err := jose.B64.DecodeString(sig)
	if err != nil || !jose.Verify(spec, s.PublicKey(), h+"."+p, raw) {
		t.Fatalf("the signature does not verify (%v)", err)
	}
	for _, part := range []struct {
		enc string
		dst *map[string]any
	}{{h, &header}, {p, &claims}} {
		b, err := jose.B64.DecodeString(part.enc)
		if err != nil || json.Unmarshal(b, part.dst) != nil {
			t.Fatalf("part %q does not decode", part.enc)
		}
	}
	return header, claims
}

// RFC 7523 §3: iss = sub = client id, aud the issuer as a string, a fresh
// jti, iat and exp; the header names the alg, the kid and the type of
// draft-ietf-oauth-rfc7523bis.
func TestClientAssertion(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := newTestSigner(t, mustECDSA(elliptic.P256()), SignerOptions{Now: func() time.Time { return now }})
	opts := AssertionOptions{ClientID: "fapi-client", Audience: "https://as.example", KeyID: "k1"}
	a1, err := s.ClientAssertion(opts)
	if err != nil {
		t.Fatal(err)
	}
	h, c := verifyAssertion(t, s, a1)
	if h["alg"] != "ES256" || h["typ"] != "client-authentication+jwt" || h["kid"] != "k1" {
		t.Errorf("header %v", h)
	}
	if c["iss"] != "fapi-client" || c["sub"] != "fapi-client" || c["aud"] != "https://as.example" ||
		c["iat"] != float64(now.Unix()) || c["exp"] != float64(now.Add(DefaultAssertionLifetime).Unix()) {
		t.Errorf("claims %v", c)
	}
	a2, _ := s.ClientAssertion(opts)
	if _, c2 := verifyAssertion(t, s, a2); c2["jti"] == c["jti"] || len(c["jti"].(string)) < 22 {
		t.Errorf("jti %v then %v: want fresh 128-bit values", c["jti"], c2["jti"])
	}
	if h, _ := verifyAssertion(t, s, mustAssertion(t, s, AssertionOptions{ClientID: "c", Audience: "a"})); h["kid"] != nil {
		t.Errorf("kid sent without KeyID: %v", h)
	}
	for _, bad := range []AssertionOptions{
		{Audience: "https://as.example"}, {ClientID: "c"},
		{ClientID: "c", Audience: "a", Lifetime: time.Millisecond}, {ClientID: "c", Audience: "a", Lifetime: 6 * time.Minute},
	} {
		if _, err := s.ClientAssertion(bad); err == nil {
			t.Errorf("ClientAssertion(%+v) accepted", bad)
		}
	}
}

func mustAssertion(t *testing.T, s *Signer, opts AssertionOptions) string {
	t.Helper()
	a, err := s.ClientAssertion(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// AssertionTransport adds a fresh assertion to form POSTs to the token
// URLs, on a clone, and leaves every other request alone.
func TestAssertionTransport(t *testing.T) {
	s := newTestSigner(t, mustECDSA(elliptic.P256()), SignerOptions{})
	var seen []*http.Request
	var bodies []url.Values
	tr := &AssertionTransport{
		Signer: s, Options: AssertionOptions{ClientID: "c1", Audience: "https://as.example"},
		TokenURLs: []string{"https://as.example/token", "https://as.example/par"},
		Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			seen = append(seen, r)
			var form url.Values
			if r.Body != nil {
				b, _ := io.ReadAll(r.Body)
				form, _ = url.ParseQuery(string(b))
				if r.GetBody != nil {
					again, _ := r.GetBody()
					b2, _ := io.ReadAll(again)
					if string(b2) != string(b) {
						t.Errorf("GetBody gives %q, body %q", b2, b)
					}
				}
			}
			bodies = append(bodies, form)
			return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
		}),
	}
	post := func(u, body, ct string) (*http.Request, error) {
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		_, err := tr.RoundTrip(req)
		return req, err
	}
	const form = "application/x-www-form-urlencoded"
	req, err := post("https://as.example/token", "grant_type=client_credentials&scope=read", form)
	if err != nil {
		t.Fatal(err)
	}
	got := bodies[len(bodies)-1]
	if got.Get("client_assertion_type") != AssertionType || got.Get("client_id") != "c1" || got.Get("grant_type") != "client_credentials" || got.Get("scope") != "read" {
		t.Fatalf("token request body %v", got)
	}
	if _, c := verifyAssertion(t, s, got.Get("client_assertion")); c["aud"] != "https://as.example" {
		t.Errorf("assertion claims %v", c)
	}
	if seen[len(seen)-1] == req {
		t.Error("the caller's request was sent, not a clone")
	}
	first := got.Get("client_assertion")
	if _, err := post("https://as.example/par?x=1", "response_type=code", form); err != nil || bodies[len(bodies)-1].Get("client_assertion") == first {
		t.Errorf("PAR request: %v, assertion %q (first %q)", err, bodies[len(bodies)-1].Get("client_assertion"), first)
	}
	for _, tc := range []struct{ name, url, body, ct string }{
		{"another URL", "https://as.example/other", "a=b", form},
		{"JSON body", "https://as.example/token", "{}", "application/json"},
	} {
		n := len(seen)
		if _, err := post(tc.url, tc.body, tc.ct); err != nil || len(seen) != n+1 || bodies[n].Has("client_assertion") {
			t.Errorf("%s: %v, body %v", tc.name, err, bodies[n])
		}
	}
	get, _ := http.NewRequest(http.MethodGet, "https://as.example/token", nil)
	if _, err := tr.RoundTrip(get); err != nil || bodies[len(bodies)-1] != nil {
		t.Errorf("GET: %v %v", err, bodies[len(bodies)-1])
	}
	// A form POST without a body gets the assertion alone.
	empty, _ := http.NewRequest(http.MethodPost, "https://as.example/token", nil)
	empty.Header.Set("Content-Type", form)
	if _, err := tr.RoundTrip(empty); err != nil || bodies[len(bodies)-1].Get("client_assertion") == "" || bodies[len(bodies)-1].Get("client_id") != "c1" {
		t.Errorf("empty body: %v %v", err, bodies[len(bodies)-1])
	}
	if _, err := post("https://as.example/token", "%zz", form); err == nil {
		t.Error("a body that is not form encoding got an assertion")
	}
	withAuth, _ := http.NewRequest(http.MethodPost, "https://as.example/token", strings.NewReader("grant_type=client_credentials"))
	withAuth.Header.Set("Content-Type", form)
	withAuth.Header.Set("Authorization", "Basic YzE6cw==")
	if _, err := tr.RoundTrip(withAuth); err == nil {
		t.Error("a request with an Authorization header got an assertion too")
	}
	bad := *tr
	bad.Options.Lifetime = time.Hour
	if _, err := bad.RoundTrip(mustPost(t, "https://as.example/token", "grant_type=client_credentials")); err == nil {
		t.Error("options that make no assertion: the request was sent")
	}
	// A request that already authenticates is refused, not doubled.
	if _, err := post("https://as.example/token", "grant_type=client_credentials&client_secret=s", form); err == nil {
		t.Error("a request with client_secret got an assertion too")
	}
	if _, err := post("https://as.example/token", strings.Repeat("a", maxAssertionBody+1), form); err == nil {
		t.Error("an oversized body was read")
	}
}

func mustPost(t *testing.T, u, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}
