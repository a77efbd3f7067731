package examples_test

// End-to-end tests of private_key_jwt clients (-jwt-client) and of the demo
// under the FAPI 2.0 profile (-profile fapi2): the keys are made here, their
// public JWK Sets written to files the server registers, and the flows run
// with the kit's own Signer and with examples/client -mode fapi.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
)

// jwtClient is a private_key_jwt client of a test: its id, its key's PEM
// file (for examples/client), the JWK Set file (for -jwt-client) and the
// signer of its assertions.
type jwtClient struct {
	id, kid       string
	pemFile, jwks string
	signer        *dpop.Signer
}

// newJWTClient writes key as PKCS #8 PEM and its public JWK Set (with kid)
// into dir.
func newJWTClient(t *testing.T, dir, id, kid string, key crypto.Signer) jwtClient {
	t.Helper()
	s, err := dpop.NewSigner(key, dpop.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := jwtClient{id: id, kid: kid, pemFile: filepath.Join(dir, id+".pem"), jwks: filepath.Join(dir, id+".json"), signer: s}
	if err := os.WriteFile(c.pemFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	var jwk map[string]any
	if err := json.Unmarshal(s.PublicJWK(), &jwk); err != nil {
		t.Fatal(err)
	}
	jwk["kid"] = kid
	set, _ := json.Marshal(map[string]any{"keys": []any{jwk}})
	if err := os.WriteFile(c.jwks, set, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// fapiClients makes an ES256 and a PS256 client.
func fapiClients(t *testing.T) (es, ps jwtClient) {
	t.Helper()
	dir := t.TempDir()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	es, ps = newJWTClient(t, dir, "fapi-client", "es1", ecKey), newJWTClient(t, dir, "fapi-ps", "ps1", rsaKey)
	if es.signer.Algorithm() != "ES256" || ps.signer.Algorithm() != "PS256" {
		t.Fatalf("algorithms %s, %s", es.signer.Algorithm(), ps.signer.Algorithm())
	}
	return es, ps
}

// assertion is a fresh client assertion of c for the issuer of d.
func (c jwtClient) assertion(t *testing.T, d *demo) string {
	t.Helper()
	a, err := c.signer.ClientAssertion(dpop.AssertionOptions{ClientID: c.id, Audience: d.url, KeyID: c.kid})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// newProofSigner is a fresh ES256 DPoP key.
func newProofSigner(t *testing.T) *dpop.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dpop.NewSigner(k, dpop.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// postWithProof posts the form made by body (called once per attempt, so
// that an assertion in it is fresh) to u with a proof of s, and once more
// with the server's nonce when it asks for one (RFC 9449 §8).
func postWithProof(t *testing.T, u, basic string, s *dpop.Signer, body func() url.Values) reply {
	t.Helper()
	nonce := ""
	for attempt := 0; ; attempt++ {
		p, err := s.Proof(http.MethodPost, u, dpop.ProofOptions{Nonce: nonce})
		if err != nil {
			t.Fatal(err)
		}
		r := curlPost(t, u, basic, p, body().Encode())
		if attempt == 0 && r.str("error") == "use_dpop_nonce" && r.header.Get("DPoP-Nonce") != "" {
			nonce = r.header.Get("DPoP-Nonce")
			continue
		}
		return r
	}
}

// getWithProof calls the API at u with the DPoP token tok and a proof of s,
// following one nonce challenge.
func getWithProof(t *testing.T, u, tok string, s *dpop.Signer) reply {
	t.Helper()
	nonce := ""
	for attempt := 0; ; attempt++ {
		p, err := s.Proof(http.MethodGet, u, dpop.ProofOptions{AccessToken: tok, Nonce: nonce})
		if err != nil {
			t.Fatal(err)
		}
		r := curlGet(t, u, "", "Authorization", "DPoP "+tok, "DPoP", p)
		if attempt == 0 && r.status == http.StatusUnauthorized && r.header.Get("DPoP-Nonce") != "" {
			nonce = r.header.Get("DPoP-Nonce")
			continue
		}
		return r
	}
}

// withAssertion adds c's fresh assertion to the form kv.
func withAssertion(t *testing.T, d *demo, c jwtClient, kv ...string) func() url.Values {
	return func() url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		v.Set("client_assertion_type", dpop.AssertionType)
		v.Set("client_assertion", c.assertion(t, d))
		return v
	}
}

// plainForm is the form kv, the same on every attempt.
func plainForm(kv ...string) func() url.Values {
	return func() url.Values {
		v, _ := url.ParseQuery(form(kv...))
		return v
	}
}

// TestJWTClientWithoutProfile registers private_key_jwt clients on the demo
// without a profile: client credentials with an ES256 or a PS256 assertion
// give a token the API accepts; a replayed assertion, one for another
// client and a secret for a keyed client are refused; the demo's own
// clients still work beside them.
func TestJWTClientWithoutProfile(t *testing.T) {
	t.Parallel()
	es, ps := fapiClients(t)
	d := startDemo(t, nil, "-jwt-client", es.id+"="+es.jwks, "-jwt-client", ps.id+"="+ps.jwks)
	if !strings.Contains(banner(t, d), "private_key_jwt") {
		t.Fatalf("the banner does not list the private_key_jwt clients:\n%s", d.stdout)
	}
	tokenURL := d.url + "/oauth2/token"
	for _, c := range []jwtClient{es, ps} {
		s := newProofSigner(t)
		r := postWithProof(t, tokenURL, "", s, withAssertion(t, d, c, "grant_type", "client_credentials", "scope", "read"))
		wantStatus(t, r, http.StatusOK, c.id+": client_credentials with an assertion")
		if !strings.EqualFold(r.str("token_type"), "DPoP") {
			t.Fatalf("token response %s", r.body)
		}
		wantHello(t, getWithProof(t, d.url+"/api/hello", r.str("access_token"), s), c.id, c.id, "read", s.JKT())
	}

	s := newProofSigner(t)
	a := es.assertion(t, d)
	once := plainForm("grant_type", "client_credentials", "client_assertion_type", dpop.AssertionType, "client_assertion", a)
	wantStatus(t, postWithProof(t, tokenURL, "", s, once), http.StatusOK, "the first use of an assertion")
	wantError(t, postWithProof(t, tokenURL, "", s, once), http.StatusUnauthorized, "invalid_client", "a replayed assertion")
	// es's assertion, claiming to be fapi-ps.
	wantError(t, postWithProof(t, tokenURL, "", s, plainForm("grant_type", "client_credentials", "client_id", ps.id,
		"client_assertion_type", dpop.AssertionType, "client_assertion", es.assertion(t, d))),
		http.StatusUnauthorized, "invalid_client", "another client's assertion")
	wantError(t, postWithProof(t, tokenURL, es.id+":secret", s, plainForm("grant_type", "client_credentials")),
		http.StatusUnauthorized, "invalid_client", "a secret for a private_key_jwt client")
	// The demo's secret client is still there.
	wantStatus(t, postWithProof(t, tokenURL, "demo:demo-secret", s, plainForm("grant_type", "client_credentials")), http.StatusOK, "demo beside them")

	// examples/client's FAPI mode needs no profile either.
	out, _ := run(t, "client", "-issuer", d.url, "-mode", "fapi", "-client-id", es.id, "-client-key", es.pemFile, "-kid", es.kid)
	if !strings.Contains(out, "SUCCESS: fapi flow done") {
		t.Fatalf("client -mode fapi:\n%s", out)
	}
}

// TestFAPI2Profile runs the demo with -profile fapi2 (in memory, with nonces
// and JWT access tokens, and over Redis and PostgreSQL when their URLs are
// set): examples/client's FAPI mode with an ES256 and a PS256 client, the
// metadata, and the refusals of what the profile forbids.
func TestFAPI2Profile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, env string
		flags     []string
	}{
		{name: "memory"},
		{name: "memory nonce jwt", flags: []string{"-require-nonce", "-token-format", "jwt"}},
		{name: "redis", env: "DPOPKIT_REDIS_URL", flags: []string{"-store", "redis", "-redis-url"}},
		{name: "postgres", env: "DPOPKIT_POSTGRES_URL", flags: []string{"-store", "postgres", "-postgres-url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			flags := tc.flags
			if tc.env != "" {
				storeURL := os.Getenv(tc.env)
				if storeURL == "" {
					t.Skipf("%s is not set (CI sets it; see the README)", tc.env)
				}
				// A namespace of this test's own, with nonces as well.
				flags = append(append([]string{}, flags...), storeURL, "-store-namespace", "dpopkit_examples_fapi", "-require-nonce")
			}
			es, ps := fapiClients(t)
			d := startDemo(t, nil, append([]string{"-profile", "fapi2", "-jwt-client", es.id + "=" + es.jwks, "-jwt-client", ps.id + "=" + ps.jwks}, flags...)...)
			testFAPI2(t, d, es, ps)
		})
	}
}

// banner waits for the demo's banner to be whole (its last line starts
// with "try:") and returns it.
func banner(t *testing.T, d *demo) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if s := d.stdout.String(); strings.Contains(s, "\ntry: ") {
			return s
		}
	}
	t.Fatalf("the banner is not whole:\n%s", d.stdout)
	return ""
}

func testFAPI2(t *testing.T, d *demo, es, ps jwtClient) {
	t.Helper()
	banner := banner(t, d)
	for _, want := range []string{"profile fapi2", "demo-public and demo-rs are not registered", es.id, "-mode fapi"} {
		if !strings.Contains(banner, want) {
			t.Fatalf("the banner has no %q:\n%s", want, banner)
		}
	}
	md := curlGet(t, d.url+"/.well-known/oauth-authorization-server", "")
	wantStatus(t, md, http.StatusOK, "metadata")
	methods, _ := json.Marshal(md.json["token_endpoint_auth_methods_supported"])
	if md.json["require_pushed_authorization_requests"] != true || string(methods) != `["private_key_jwt"]` ||
		md.str("pushed_authorization_request_endpoint") != d.url+"/oauth2/par" {
		t.Fatalf("metadata %s: want require_pushed_authorization_requests true, token_endpoint_auth_methods_supported [\"private_key_jwt\"] and the PAR endpoint", md.body)
	}

	for _, c := range []jwtClient{es, ps} {
		out, _ := run(t, "client", "-issuer", d.url, "-mode", "fapi", "-client-id", c.id, "-client-key", c.pemFile, "-kid", c.kid)
		for _, want := range []string{"SUCCESS: fapi flow done", "PAR response: 201 Created", "303 See Other", `"typ":"client-authentication+jwt"`,
			`"alg":"` + c.signer.Algorithm() + `"`, "grant_type=refresh_token", `"sub": "alice"`, `"client_id": "` + c.id + `"`} {
			if !strings.Contains(out, want) {
				t.Fatalf("client -mode fapi as %s: no %q in\n%s", c.id, want, out)
			}
		}
	}

	tokenURL, parURL := d.url+"/oauth2/token", d.url+"/oauth2/par"
	s := newProofSigner(t)
	// Client credentials with an assertion: the profile allows the grant.
	r := postWithProof(t, tokenURL, "", s, withAssertion(t, d, es, "grant_type", "client_credentials", "scope", "read"))
	wantStatus(t, r, http.StatusOK, "client_credentials with an assertion")
	wantHello(t, getWithProof(t, d.url+"/api/hello", r.str("access_token"), s), es.id, es.id, "read", s.JKT())

	// Secrets and public clients: invalid_client, registered or not.
	wantError(t, postWithProof(t, tokenURL, "demo:demo-secret", s, plainForm("grant_type", "client_credentials")),
		http.StatusUnauthorized, "invalid_client", "the demo's secret client")
	wantError(t, postWithProof(t, tokenURL, es.id+":secret", s, plainForm("grant_type", "client_credentials")),
		http.StatusUnauthorized, "invalid_client", "a secret for the private_key_jwt client")
	wantError(t, postWithProof(t, tokenURL, "", s, plainForm("grant_type", "client_credentials", "client_id", "demo-public")),
		http.StatusUnauthorized, "invalid_client", "demo-public")

	// An authorization request that did not go through PAR: refused, as an
	// error page or as a redirect with an error, never a code.
	_, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {es.id}, "redirect_uri": {redirectURI}, "scope": {"read"}, "state": {"s1"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "dpop_jkt": {s.JKT()}}
	r = curlGet(t, d.url+"/oauth2/authorize?"+q.Encode(), "alice:wonderland")
	switch r.status {
	case http.StatusSeeOther:
		loc, _ := url.Parse(r.header.Get("Location"))
		if loc == nil || loc.Query().Get("error") != "invalid_request" || loc.Query().Get("code") != "" || loc.Query().Get("iss") != d.url {
			t.Fatalf("an authorization request without PAR redirected to %s", r.header.Get("Location"))
		}
	case http.StatusBadRequest:
	default:
		t.Fatalf("an authorization request without PAR: %d %v %s", r.status, r.header, r.body)
	}

	// PAR by hand: demo-public is refused, the assertion client gets a
	// request_uri, the authorization endpoint redirects with 303.
	verifier, challenge := pkce()
	push := []string{"response_type", "code", "client_id", es.id, "redirect_uri", redirectURI, "scope", "read", "state", "s2",
		"code_challenge", challenge, "code_challenge_method", "S256"}
	wantError(t, postWithProof(t, parURL, "", s, plainForm(append(push[:2:2], "client_id", "demo-public")...)),
		http.StatusUnauthorized, "invalid_client", "PAR by demo-public")
	r = postWithProof(t, parURL, "", s, withAssertion(t, d, es, push...))
	wantStatus(t, r, http.StatusCreated, "PAR")
	requestURI := r.str("request_uri")
	r = curlGet(t, d.url+"/oauth2/authorize?"+url.Values{"client_id": {es.id}, "request_uri": {requestURI}}.Encode(), "alice:wonderland")
	wantStatus(t, r, http.StatusSeeOther, "authorization request by reference")
	loc, _ := url.Parse(r.header.Get("Location"))
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("state") != "s2" || loc.Query().Get("iss") != d.url {
		t.Fatalf("redirect to %s", loc)
	}
	// The code is bound to s's key (the PAR proof's): another key is refused.
	r = postWithProof(t, tokenURL, "", newProofSigner(t), withAssertion(t, d, es, "grant_type", "authorization_code", "code", code,
		"redirect_uri", redirectURI, "code_verifier", verifier))
	if r.status != http.StatusBadRequest {
		t.Fatalf("a code redeemed with another DPoP key: %d %s", r.status, r.body)
	}
}

// TestFAPI2ProfileWithoutClients checks that -profile fapi2 without any
// -jwt-client starts, says that no client can do anything, and refuses the
// demo's own clients.
func TestFAPI2ProfileWithoutClients(t *testing.T) {
	t.Parallel()
	d := startDemo(t, nil, "-profile", "fapi2")
	if !strings.Contains(banner(t, d), "none: no client can get a token") {
		t.Fatalf("the banner does not say that no client is registered:\n%s", d.stdout)
	}
	tokenURL := d.url + "/oauth2/token"
	wantError(t, postWithProof(t, tokenURL, "demo:demo-secret", newProofSigner(t), plainForm("grant_type", "client_credentials")),
		http.StatusUnauthorized, "invalid_client", "demo under the profile")
	if _, errOut, err := runErr("server", "-addr", "127.0.0.1:0", "-profile", "fapi"); err == nil || !strings.Contains(errOut, "-profile") {
		t.Fatalf("server -profile fapi: %v\n%s", err, errOut)
	}
}

// TestClientJWKS follows the steps the client's documentation gives: -jwks
// makes a key (mode 0600) and prints its public JWK Set, which the server
// registers, and -mode fapi then runs with the same key file.
func TestClientJWKS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile, jwksFile := filepath.Join(dir, "fapi.pem"), filepath.Join(dir, "fapi-jwks.json")
	out, _ := run(t, "client", "-client-key", keyFile, "-kid", "k1", "-jwks")
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(out), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("client -jwks printed %q (%v)", out, err)
	}
	if k := set.Keys[0]; k["kid"] != "k1" || k["alg"] != "ES256" || k["kty"] != "EC" || k["d"] != nil {
		t.Fatalf("client -jwks key %v: want a public ES256 key with kid k1", k)
	}
	if info, err := os.Stat(keyFile); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", err, info)
	}
	// A second run prints the same key.
	if again, _ := run(t, "client", "-client-key", keyFile, "-kid", "k1", "-jwks"); again != out {
		t.Fatalf("a second -jwks printed another set:\n%s\n%s", out, again)
	}
	if err := os.WriteFile(jwksFile, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDemo(t, nil, "-profile", "fapi2", "-jwt-client", "fapi-client="+jwksFile)
	out, _ = run(t, "client", "-issuer", d.url, "-mode", "fapi", "-client-id", "fapi-client", "-client-key", keyFile, "-kid", "k1")
	if !strings.Contains(out, "SUCCESS: fapi flow done") {
		t.Fatalf("client -mode fapi:\n%s", out)
	}
	if _, _, err := runErr("client", "-jwks"); err == nil {
		t.Fatal("client -jwks without -client-key succeeded")
	}
}
