package examples_test

// End-to-end tests of the examples: the demo server, the client and the proof
// tool are built once (TestMain) and run as the README runs them, each test
// against demo servers of its own on free ports.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binDir holds the built commands: server, client and proof.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dpopkit-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	args := []string{"build"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-o", dir+string(os.PathSeparator), "./server", "./client", "./proof")
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the examples:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The demo's fixed registrations, as the README uses them.
const (
	redirectURI = "http://127.0.0.1:8765/callback"
	// nonceSecret is a shared nonce secret for the tests of several instances.
	nonceSecret = "0123456789abcdef0123456789abcdef-shared-by-the-instances"
)

// env is the environment of the commands: this process's, without a nonce
// secret that would change what the tests expect.
func env(extra ...string) []string {
	var out []string
	gorace := "GORACE=atexit_sleep_ms=0" // race builds otherwise wait 1s at exit
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "DPOPKIT_NONCE_SECRET="):
		case strings.HasPrefix(kv, "GORACE="):
			gorace = kv + " atexit_sleep_ms=0"
		default:
			out = append(out, kv)
		}
	}
	return append(append(out, gorace), extra...)
}

// syncBuffer is a bytes.Buffer safe for a writer and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// demo is a running demo server.
type demo struct {
	url    string
	stdout *syncBuffer
	stderr *syncBuffer
}

// startDemo runs the demo server on a free port with the given flags, waits
// until it says where it listens, and at the end of the test stops it with
// SIGINT and checks that it shut down cleanly.
func startDemo(t *testing.T, extraEnv []string, args ...string) *demo {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "server"), append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = env(extraEnv...)
	d := &demo{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	cmd.Stderr = d.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			d.stdout.Write([]byte(line + "\n"))
			if u, ok := strings.CutPrefix(line, "dpopkit demo listening on "); ok {
				select {
				case found <- u:
				default:
				}
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case d.url = <-found:
	case err := <-exited:
		t.Fatalf("the demo server exited at start (%v):\n%s", err, d.stderr)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the demo server did not start:\n%s", d.stderr)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the demo server did not exit cleanly on SIGINT: %v", err)
			}
			if !strings.Contains(d.stderr.String(), "msg=stopped") {
				t.Errorf("the demo server did not log its shutdown")
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Errorf("the demo server did not stop within 20s of SIGINT")
		}
		if t.Failed() {
			t.Logf("demo server %v output:\n%s\n%s", args, d.stdout, d.stderr)
		}
	})
	return d
}

// bound is the address the server listens on, from its banner.
func (d *demo) bound(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, line := range strings.Split(d.stdout.String(), "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "bound to "); ok {
				addr, _, _ := strings.Cut(rest, ";")
				return addr
			}
		}
	}
	t.Fatalf("the banner does not say where the server listens:\n%s", d.stdout)
	return ""
}

// run runs one of the built commands and returns its standard output and
// error; it fails the test when the command fails.
func run(t *testing.T, name string, args ...string) (string, string) {
	t.Helper()
	stdout, stderr, err := runErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout, stderr
}

func runErr(name string, args ...string) (string, string, error) {
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Env = env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", "", err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return stdout.String(), stderr.String(), err
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		return stdout.String(), stderr.String(), errors.New("timed out")
	}
}

// proof runs examples/proof with the key in keyFile, as $(go run
// ./examples/proof ...) does in the README.
func proof(t *testing.T, keyFile string, args ...string) string {
	t.Helper()
	out, _ := run(t, "proof", append([]string{"-key", keyFile}, args...)...)
	return strings.TrimSpace(out)
}

// reply is a response, read whole.
type reply struct {
	status int
	header http.Header
	body   string
	json   map[string]any
}

func (r reply) str(k string) string { s, _ := r.json[k].(string); return s }

// send sends req as curl does without -L: redirects are not followed.
func send(t *testing.T, req *http.Request) reply {
	t.Helper()
	c := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
	json.Unmarshal(b, &r.json)
	return r
}

// curlPost is `curl -X POST URL [-u user:pass] -H "Content-Type:
// application/x-www-form-urlencoded" -H "DPoP: proof" -d body`.
func curlPost(t *testing.T, u, basic, dpopProof, body string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if basic != "" {
		user, pass, _ := strings.Cut(basic, ":")
		req.SetBasicAuth(user, pass)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if dpopProof != "" {
		req.Header.Set("DPoP", dpopProof)
	}
	return send(t, req)
}

// curlGet is `curl URL [-u user:pass] [-H "name: value"]...`.
func curlGet(t *testing.T, u, basic string, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if basic != "" {
		user, pass, _ := strings.Cut(basic, ":")
		req.SetBasicAuth(user, pass)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	return send(t, req)
}

// wantStatus fails unless r has the status.
func wantStatus(t *testing.T, r reply, status int, what string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.status, status, r.body)
	}
}

// wantHello checks an answer of GET /api/hello.
func wantHello(t *testing.T, r reply, sub, clientID, scope, jkt string) {
	t.Helper()
	wantStatus(t, r, http.StatusOK, "GET /api/hello")
	if r.str("sub") != sub || r.str("client_id") != clientID || r.str("scope") != scope || r.str("jkt") != jkt {
		t.Fatalf("GET /api/hello answered %s; want sub %q, client_id %q, scope %q, jkt %q", r.body, sub, clientID, scope, jkt)
	}
}

// wantResourceMetadata checks the protected resource metadata (RFC 9728) of
// each resource, served at the path §3.1 gives it on origin: the issuer's
// (the server as a whole, part of the demo's fixed interface), then each
// API's.
func wantResourceMetadata(t *testing.T, origin string, resources ...string) {
	t.Helper()
	for _, resource := range resources {
		u, err := url.Parse(resource)
		if err != nil {
			t.Fatal(err)
		}
		path := "/.well-known/oauth-protected-resource" + u.Path
		r := curlGet(t, origin+path, "")
		wantStatus(t, r, http.StatusOK, path)
		if r.str("resource") != resource || r.json["dpop_bound_access_tokens_required"] != true {
			t.Fatalf("%s: %s, want resource %s", path, r.body, resource)
		}
	}
}

// waitLog waits for the server's log to contain s.
func waitLog(t *testing.T, d *demo, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(d.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the server log has no %q:\n%s", s, d.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGuideWalkthrough drives the demo with the README's walkthrough, which
// follows WSO2 Identity Server's DPoP guide: each request is the one its curl
// command sends, and every proof comes from examples/proof.
func TestGuideWalkthrough(t *testing.T) {
	t.Parallel()
	d := startDemo(t, nil)
	key := filepath.Join(t.TempDir(), "dpop-key.pem")
	tokenURL := d.url + "/oauth2/token"

	// The metadata documents name the demo.
	md := curlGet(t, d.url+"/.well-known/oauth-authorization-server", "")
	wantStatus(t, md, http.StatusOK, "authorization server metadata")
	if md.str("issuer") != d.url || md.str("token_endpoint") != tokenURL {
		t.Fatalf("authorization server metadata: %s", md.body)
	}
	wantResourceMetadata(t, d.url, d.url, d.url+"/api", d.url+"/billing")

	// 1. Client credentials:
	//    curl -X POST $ISSUER/oauth2/token -u demo:demo-secret \
	//      -H "Content-Type: application/x-www-form-urlencoded" \
	//      -H "DPoP: $(go run ./examples/proof -method POST -url $ISSUER/oauth2/token)" \
	//      -d grant_type=client_credentials
	p := proof(t, key, "-method", "POST", "-url", tokenURL)
	r := curlPost(t, tokenURL, "demo:demo-secret", p, "grant_type=client_credentials")
	wantStatus(t, r, http.StatusOK, "client credentials token request")
	if r.str("token_type") != "DPoP" || r.str("access_token") == "" || r.str("scope") != "read write" {
		t.Fatalf("token response %s", r.body)
	}
	ccToken := r.str("access_token")
	if info, err := os.Stat(key); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the proof key file: %v, mode %v; want 0600", err, info.Mode().Perm())
	}
	// The same proof again is a replay.
	r = curlPost(t, tokenURL, "demo:demo-secret", p, "grant_type=client_credentials")
	wantStatus(t, r, http.StatusBadRequest, "replayed proof")
	if r.str("error") != "invalid_dpop_proof" {
		t.Fatalf("replayed proof: %s", r.body)
	}
	// No proof, no token: the demo clients are DPoP-bound.
	r = curlPost(t, tokenURL, "demo:demo-secret", "", "grant_type=client_credentials")
	wantStatus(t, r, http.StatusBadRequest, "token request without a proof")

	// The key the proofs share: go run ./examples/proof -jkt
	jkt := proof(t, key, "-jkt")
	if len(jkt) != 43 {
		t.Fatalf("proof -jkt printed %q, want a thumbprint", jkt)
	}

	// The API with the client credentials token:
	//    curl $ISSUER/api/hello -H "Authorization: DPoP $TOKEN" \
	//      -H "DPoP: $(go run ./examples/proof -method GET -url $ISSUER/api/hello -token "$TOKEN")"
	api := d.url + "/api/hello"
	r = curlGet(t, api, "", "Authorization", "DPoP "+ccToken, "DPoP", proof(t, key, "-method", "GET", "-url", api, "-token", ccToken))
	wantHello(t, r, "demo", "demo", "read write", jkt)
	// Without ath, or as a Bearer token, it is refused.
	r = curlGet(t, api, "", "Authorization", "DPoP "+ccToken, "DPoP", proof(t, key, "-method", "GET", "-url", api))
	wantStatus(t, r, http.StatusUnauthorized, "API call with a proof without ath")
	r = curlGet(t, api, "", "Authorization", "Bearer "+ccToken)
	wantStatus(t, r, http.StatusUnauthorized, "API call with the token as Bearer")
	other := filepath.Join(t.TempDir(), "other-key.pem")
	r = curlGet(t, api, "", "Authorization", "DPoP "+ccToken, "DPoP", proof(t, other, "-method", "GET", "-url", api, "-token", ccToken))
	wantStatus(t, r, http.StatusUnauthorized, "API call with a proof of another key")

	// 2. The authorization request with dpop_jkt, alice logging in:
	//    curl -u alice:wonderland "$ISSUER/oauth2/authorize?response_type=code&client_id=demo&
	//      redirect_uri=http://127.0.0.1:8765/callback&scope=read&state=xyz&dpop_jkt=$(go run ./examples/proof -jkt)"
	authURL := d.url + "/oauth2/authorize?response_type=code&client_id=demo&redirect_uri=" + redirectURI + "&scope=read&state=xyz&dpop_jkt=" + jkt
	r = curlGet(t, authURL, "")
	wantStatus(t, r, http.StatusUnauthorized, "authorization request without credentials")
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("no Basic challenge: %v", r.header)
	}
	r = curlGet(t, authURL, "alice:nope")
	wantStatus(t, r, http.StatusUnauthorized, "authorization request with a wrong password")
	code := authorize(t, d, authURL, "xyz")

	// 3. The code exchange, client_id and client_secret in the body:
	//    curl -X POST $ISSUER/oauth2/token -H "Content-Type: application/x-www-form-urlencoded" \
	//      -H "DPoP: $(go run ./examples/proof -method POST -url $ISSUER/oauth2/token)" \
	//      -d "grant_type=authorization_code&code=$CODE&redirect_uri=http://127.0.0.1:8765/callback&client_id=demo&client_secret=demo-secret"
	exchange := func(code string) string {
		return "grant_type=authorization_code&code=" + code + "&redirect_uri=" + redirectURI + "&client_id=demo&client_secret=demo-secret"
	}
	r = curlPost(t, tokenURL, "", proof(t, key, "-method", "POST", "-url", tokenURL), exchange(code))
	wantStatus(t, r, http.StatusOK, "code exchange")
	if r.str("token_type") != "DPoP" || r.str("refresh_token") == "" || r.str("scope") != "read" {
		t.Fatalf("code exchange response %s", r.body)
	}
	codeToken := r.str("access_token")

	// 4. The API call with the token, and a proof with ath.
	hello := func() reply {
		return curlGet(t, api, "", "Authorization", "DPoP "+codeToken, "DPoP", proof(t, key, "-method", "GET", "-url", api, "-token", codeToken))
	}
	wantHello(t, hello(), "alice", "demo", "read", jkt)

	// A code is good once, and using it again revokes what it gave.
	r = curlPost(t, tokenURL, "", proof(t, key, "-method", "POST", "-url", tokenURL), exchange(code))
	wantStatus(t, r, http.StatusBadRequest, "second exchange of one code")
	wantStatus(t, hello(), http.StatusUnauthorized, "API call with the token of a replayed code")

	// A code requested with dpop_jkt cannot be redeemed with another key.
	code = authorize(t, d, authURL, "xyz")
	r = curlPost(t, tokenURL, "", proof(t, other, "-method", "POST", "-url", tokenURL), exchange(code))
	wantStatus(t, r, http.StatusBadRequest, "code exchange with a proof of another key")
	if r.str("error") != "invalid_grant" {
		t.Fatalf("code exchange with a proof of another key: %s", r.body)
	}

	// One log line per request, path only.
	waitLog(t, d, "msg=request method=POST path=/oauth2/token status=200")
	waitLog(t, d, "msg=request method=GET path=/api/hello status=401")
	if strings.Contains(d.stderr.String(), code) || strings.Contains(d.stderr.String(), "demo-secret") {
		t.Fatal("the server logged a code or a secret")
	}
}

// authorize sends the authorization request as alice and returns the code
// from the redirect, after checking state and iss.
func authorize(t *testing.T, d *demo, authURL, state string) string {
	t.Helper()
	r := curlGet(t, authURL, "alice:wonderland")
	wantStatus(t, r, http.StatusFound, "authorization request")
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	if loc.Scheme+"://"+loc.Host+loc.Path != redirectURI || q.Get("code") == "" || q.Get("state") != state || q.Get("iss") != d.url {
		t.Fatalf("redirect to %s", loc)
	}
	return q.Get("code")
}

// TestClient runs examples/client in both modes against demo servers in
// each configuration: opaque or JWT access tokens, with or without server
// nonces (which the client handles with no flag of its own).
func TestClient(t *testing.T) {
	t.Parallel()
	for _, flags := range [][]string{
		{},
		{"-require-nonce"},
		{"-token-format", "jwt"},
		{"-token-format", "jwt", "-require-nonce"},
	} {
		t.Run(strings.Join(append([]string{"server"}, flags...), " "), func(t *testing.T) {
			t.Parallel()
			d := startDemo(t, nil, flags...)
			for _, mode := range []string{"cc", "code"} {
				out, _ := run(t, "client", "-issuer", d.url, "-mode", mode)
				if !strings.Contains(out, "SUCCESS: "+mode+" flow done") {
					t.Fatalf("client -mode %s did not report success:\n%s", mode, out)
				}
				for _, want := range []string{`"typ":"dpop+jwt"`, `"htm":"POST"`, `"ath":`, `"token_type": "DPoP"`, "API response: 200 OK"} {
					if !strings.Contains(out, want) {
						t.Fatalf("client -mode %s output has no %s:\n%s", mode, want, out)
					}
				}
				if mode == "code" {
					for _, want := range []string{`"sub": "alice"`, "grant_type=refresh_token", "state and iss match"} {
						if !strings.Contains(out, want) {
							t.Fatalf("client -mode code output has no %s:\n%s", want, out)
						}
					}
				}
				nonced := strings.Contains(out, "server sent DPoP-Nonce")
				if slicesContains(flags, "-require-nonce") != nonced {
					t.Fatalf("client -mode %s against %v: nonce challenge seen = %v\n%s", mode, flags, nonced, out)
				}
			}
		})
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestClientFails checks that the client reports a failure: a server that
// is not there, and an unknown mode.
func TestClientFails(t *testing.T) {
	t.Parallel()
	if out, errOut, err := runErr("client", "-issuer", "http://127.0.0.1:1"); err == nil || !strings.Contains(errOut, "FAILED") {
		t.Fatalf("client against no server: %v\n%s\n%s", err, out, errOut)
	}
	if _, _, err := runErr("client", "-mode", "password"); err == nil {
		t.Fatal("client -mode password succeeded")
	}
	if _, errOut, err := runErr("client", "-mode", "fapi"); err == nil || !strings.Contains(errOut, "-client-id") {
		t.Fatalf("client -mode fapi without -client-id: %v\n%s", err, errOut)
	}
	if _, errOut, err := runErr("client", "-mode", "fapi", "-client-id", "x", "-client-key", filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Fatalf("client -mode fapi with a missing key file succeeded\n%s", errOut)
	}
}

// TestProofWithNonce walks the nonce dance by hand with examples/proof
// against a server started with -require-nonce.
func TestProofWithNonce(t *testing.T) {
	t.Parallel()
	d := startDemo(t, nil, "-require-nonce")
	key := filepath.Join(t.TempDir(), "k.pem")
	tokenURL := d.url + "/oauth2/token"
	r := curlPost(t, tokenURL, "demo:demo-secret", proof(t, key, "-method", "POST", "-url", tokenURL), "grant_type=client_credentials")
	wantStatus(t, r, http.StatusBadRequest, "proof without a nonce")
	nonce := r.header.Get("DPoP-Nonce")
	if r.str("error") != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("want a use_dpop_nonce challenge, got %s %v", r.body, r.header)
	}
	r = curlPost(t, tokenURL, "demo:demo-secret", proof(t, key, "-method", "POST", "-url", tokenURL, "-nonce", nonce), "grant_type=client_credentials")
	wantStatus(t, r, http.StatusOK, "proof with the nonce")
	tok := r.str("access_token")
	if n := r.header.Get("DPoP-Nonce"); n != "" {
		nonce = n
	}
	// The API takes the nonces of the same source.
	api := d.url + "/api/hello"
	r = curlGet(t, api, "", "Authorization", "DPoP "+tok, "DPoP", proof(t, key, "-method", "GET", "-url", api, "-token", tok))
	wantStatus(t, r, http.StatusUnauthorized, "API call without a nonce")
	if !strings.Contains(r.header.Get("WWW-Authenticate"), "use_dpop_nonce") || r.header.Get("DPoP-Nonce") == "" {
		t.Fatalf("API call without a nonce: %v", r.header)
	}
	r = curlGet(t, api, "", "Authorization", "DPoP "+tok, "DPoP", proof(t, key, "-method", "GET", "-url", api, "-token", tok, "-nonce", nonce))
	wantHello(t, r, "demo", "demo", "read write", proof(t, key, "-jkt"))
}

// TestSharedNonceSecret runs several instances: those given one nonce
// secret (by flag or environment) accept each other's nonces, one with its
// own random secret does not.
func TestSharedNonceSecret(t *testing.T) {
	t.Parallel()
	a := startDemo(t, nil, "-require-nonce", "-nonce-secret", nonceSecret)
	b := startDemo(t, []string{"DPOPKIT_NONCE_SECRET=" + nonceSecret}, "-require-nonce")
	c := startDemo(t, nil, "-require-nonce")
	key := filepath.Join(t.TempDir(), "k.pem")
	tokenReq := func(d *demo, nonce string) reply {
		args := []string{"-method", "POST", "-url", d.url + "/oauth2/token"}
		if nonce != "" {
			args = append(args, "-nonce", nonce)
		}
		return curlPost(t, d.url+"/oauth2/token", "demo:demo-secret", proof(t, key, args...), "grant_type=client_credentials")
	}
	nonce := tokenReq(a, "").header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("no nonce from instance a")
	}
	wantStatus(t, tokenReq(b, nonce), http.StatusOK, "instance b with a's nonce")
	wantStatus(t, tokenReq(a, nonce), http.StatusOK, "instance a with its own nonce")
	r := tokenReq(c, nonce)
	if r.status != http.StatusBadRequest || r.str("error") != "use_dpop_nonce" {
		t.Fatalf("an instance with another secret accepted a's nonce: %d %s", r.status, r.body)
	}
}

// TestJWTTokens checks the demo's JWT access tokens: RFC 9068 JWTs signed
// with the key the JWKS publishes, accepted by the API.
func TestJWTTokens(t *testing.T) {
	t.Parallel()
	d := startDemo(t, nil, "-token-format", "jwt")
	key := filepath.Join(t.TempDir(), "k.pem")
	tokenURL := d.url + "/oauth2/token"
	md := curlGet(t, d.url+"/.well-known/oauth-authorization-server", "")
	if md.str("jwks_uri") != d.url+"/oauth2/jwks" {
		t.Fatalf("metadata without the jwks_uri: %s", md.body)
	}
	jwks := curlGet(t, d.url+"/oauth2/jwks", "")
	wantStatus(t, jwks, http.StatusOK, "JWKS")
	keys, _ := jwks.json["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("JWKS %s, want one key", jwks.body)
	}
	pub, _ := keys[0].(map[string]any)
	if pub["alg"] != "ES256" || pub["kid"] == nil || pub["d"] != nil {
		t.Fatalf("JWKS key %v: want a public ES256 key with a kid", pub)
	}

	r := curlPost(t, tokenURL, "demo:demo-secret", proof(t, key, "-method", "POST", "-url", tokenURL), "grant_type=client_credentials")
	wantStatus(t, r, http.StatusOK, "token request")
	tok := r.str("access_token")
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %q is not a JWT", tok)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var header map[string]any
	json.Unmarshal(raw, &header)
	if header["typ"] != "at+jwt" || header["kid"] != pub["kid"] {
		t.Fatalf("JWT header %s; want typ at+jwt and kid %v", raw, pub["kid"])
	}
	raw, _ = base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	json.Unmarshal(raw, &claims)
	jkt := proof(t, key, "-jkt")
	if claims.Cnf.JKT != jkt {
		t.Fatalf("JWT claims %s: want cnf.jkt %s", raw, jkt)
	}
	api := d.url + "/api/hello"
	r = curlGet(t, api, "", "Authorization", "DPoP "+tok, "DPoP", proof(t, key, "-method", "GET", "-url", api, "-token", tok))
	wantHello(t, r, "demo", "demo", "read write", jkt)
	// A token signed by another key (a changed signature) is refused.
	forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
	r = curlGet(t, api, "", "Authorization", "DPoP "+forged, "DPoP", proof(t, key, "-method", "GET", "-url", api, "-token", forged))
	wantStatus(t, r, http.StatusUnauthorized, "API call with a forged JWT")
}

// TestServerFlags checks the demo's command line: -help names the
// environment variable, bad values are refused before anything listens.
func TestServerFlags(t *testing.T) {
	t.Parallel()
	_, errOut, err := runErr("server", "-help")
	if err != nil || !strings.Contains(errOut, "DPOPKIT_NONCE_SECRET") || !strings.Contains(errOut, "-require-nonce") {
		t.Fatalf("server -help: %v\n%s", err, errOut)
	}
	dir := t.TempDir()
	notJSON, noKeys, jwks := filepath.Join(dir, "bad.json"), filepath.Join(dir, "empty.json"), filepath.Join(dir, "jwks.json")
	for file, body := range map[string]string{
		notJSON: "not json", noKeys: `{"keys":[]}`,
		jwks: `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`,
	} {
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"-jwt-client", "fapi=" + notJSON},
		{"-jwt-client", "fapi=" + noKeys},
		{"-jwt-client", "fapi=" + filepath.Join(dir, "missing.json")},
		{"-jwt-client", "fapi"},
		{"-jwt-client", "=" + jwks},
		{"-jwt-client", "demo=" + jwks},
		{"-jwt-client", "fapi=" + jwks, "-jwt-client", "fapi=" + jwks},
		{"-token-format", "paseto"},
		{"-profile", "fapi"},
		{"-profile", "FAPI2"},
		{"-store", "mongodb"},
		{"-store", "redis"},    // no -redis-url
		{"-store", "postgres"}, // no -postgres-url
		{"-require-nonce", "-nonce-secret", "too short"},
		{"-issuer", "ftp://example.com"},
		{"-store", "redis", "-redis-url", "redis://127.0.0.1:1/0"}, // unreachable
		{"-store", "postgres", "-postgres-url", "postgres://postgres@127.0.0.1:1/test?sslmode=disable"}, // unreachable
		{"-store", "redis", "-redis-url", "mysql://127.0.0.1/0"},
		{"-redis-cluster"}, // the memory store is no Redis
		{"-store", "postgres", "-postgres-url", "postgres://postgres@127.0.0.1:1/test", "-redis-cluster"},
		{"-store", "redis", "-redis-cluster", "-redis-url", "mysql://127.0.0.1:30001"},
		{"-store", "redis", "-redis-cluster", "-redis-url", "redis://127.0.0.1:1?addr=127.0.0.1:2"}, // unreachable
		{"-redis-replicas", "1"}, // the memory store has no replicas
		{"-store", "redis", "-redis-url", "redis://127.0.0.1:1/0", "-redis-replicas", "-1"},
		{"-addr", "127.0.0.1:0", "extra"},
		{"-issuer", "http://127.0.0.1:8080/a//b"},
		{"-issuer", "http://127.0.0.1:8080/a?b=c"},
		{"-issuer", "http://user@127.0.0.1:8080"},
		{"-store-namespace", "e2e"}, // the memory store has none
		{"-store", "redis", "-redis-url", "redis://127.0.0.1:1/0", "-store-namespace", "Not-A-Schema"},
		{"-store", "postgres", "-postgres-url", "postgres://postgres@127.0.0.1:1/test", "-store-namespace", "1e2e"},
	} {
		_, errOut, err := runErr("server", append([]string{"-addr", "127.0.0.1:0"}, args...)...)
		if err == nil || !strings.Contains(errOut, "server:") {
			t.Errorf("server %v: %v, want a refusal\n%s", args, err, errOut)
		}
	}
}

// TestProofKeyFile checks that examples/proof keeps one key: created with
// mode 0600, reused by later runs, refused when others can read it.
func TestProofKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := filepath.Join(dir, "sub", "key.pem")
	out, errOut := run(t, "proof", "-key", key, "-method", "POST", "-url", "http://127.0.0.1:8080/oauth2/token")
	if !strings.Contains(errOut, "created a new key") || strings.Count(strings.TrimSpace(out), ".") != 2 {
		t.Fatalf("first proof: %q, %q", out, errOut)
	}
	info, err := os.Stat(key)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", err, info)
	}
	jkt := proof(t, key, "-jkt")
	if !strings.Contains(errOut, jkt) {
		t.Fatalf("the first proof's stderr does not name the jkt %s: %s", jkt, errOut)
	}
	// The proof's jwk is the key's: its thumbprint is the jkt.
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(strings.TrimSpace(out), ".")[0])
	if !bytes.Contains(header, []byte(`"typ":"dpop+jwt"`)) {
		t.Fatalf("proof header %s", header)
	}
	if again := proof(t, key, "-jkt"); again != jkt {
		t.Fatalf("a second run used another key: %s, then %s", jkt, again)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runErr("proof", "-key", key, "-jkt"); err == nil {
		t.Fatal("proof used a key file others can read")
	}
	if _, _, err := runErr("proof", "-key", filepath.Join(dir, "k2.pem")); err == nil {
		t.Fatal("proof without -url succeeded")
	}
}

// TestSharedStore runs two demo instances over one shared store, as
// "Running several instances" in the README describes: one public base URL
// (-issuer), one nonce secret, one Redis or PostgreSQL. A token issued by one
// is accepted by the other, a proof accepted by one is a replay at the
// other, and their nonces are interchangeable. The store URLs come from the
// variables the store tests read; CI sets them (and refuses skips).
func TestSharedStore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ kind, env, flag string }{
		{"redis", "DPOPKIT_REDIS_URL", "-redis-url"},
		{"postgres", "DPOPKIT_POSTGRES_URL", "-postgres-url"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			storeURL := os.Getenv(tc.env)
			if storeURL == "" {
				t.Skipf("%s is not set (CI sets it; see the README)", tc.env)
			}
			// A namespace of this test's own: the demo clients' resources
			// name the issuer, and other tests (examples/loadgen) run demos
			// of other issuers on the default one at the same time.
			flags := []string{"-store", tc.kind, tc.flag, storeURL, "-store-namespace", "dpopkit_examples_e2e",
				"-require-nonce", "-nonce-secret", nonceSecret}
			a := startDemo(t, nil, flags...)
			// b answers on its own address but under a's public URL, as
			// behind a load balancer.
			b := startDemo(t, nil, append(flags, "-issuer", a.url)...)
			bAddr := b.bound(t)
			bBase := "http://" + bAddr
			key := filepath.Join(t.TempDir(), "k.pem")
			tokenURL := a.url + "/oauth2/token"

			// The nonce comes from a, the token from b.
			r := curlPost(t, tokenURL, "demo:demo-secret", proof(t, key, "-method", "POST", "-url", tokenURL), "grant_type=client_credentials")
			nonce := r.header.Get("DPoP-Nonce")
			if r.str("error") != "use_dpop_nonce" || nonce == "" {
				t.Fatalf("want a nonce challenge from a, got %d %s", r.status, r.body)
			}
			r = curlPost(t, bBase+"/oauth2/token", "demo:demo-secret", proof(t, key, "-method", "POST", "-url", tokenURL, "-nonce", nonce), "grant_type=client_credentials")
			wantStatus(t, r, http.StatusOK, "token from b with a's nonce")
			tok := r.str("access_token")

			// a accepts b's token; the same proof at b is then a replay.
			api := a.url + "/api/hello"
			p := proof(t, key, "-method", "GET", "-url", api, "-token", tok, "-nonce", nonce)
			r = curlGet(t, api, "", "Authorization", "DPoP "+tok, "DPoP", p)
			wantHello(t, r, "demo", "demo", "read write", proof(t, key, "-jkt"))
			r = curlGet(t, bBase+"/api/hello", "", "Authorization", "DPoP "+tok, "DPoP", p)
			wantStatus(t, r, http.StatusUnauthorized, "a proof replayed at the other instance")
			if !strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_dpop_proof") {
				t.Fatalf("replay at b: %v %s", r.header, r.body)
			}

			// A code issued by b is redeemed at a.
			jkt := proof(t, key, "-jkt")
			code := authorize(t, a, bBase+"/oauth2/authorize?response_type=code&client_id=demo&redirect_uri="+redirectURI+"&scope=read&state=s1&dpop_jkt="+jkt, "s1")
			r = curlPost(t, tokenURL, "", proof(t, key, "-method", "POST", "-url", tokenURL, "-nonce", nonce),
				"grant_type=authorization_code&code="+code+"&redirect_uri="+redirectURI+"&client_id=demo&client_secret=demo-secret")
			wantStatus(t, r, http.StatusOK, "code from b exchanged at a")
		})
	}
}

// form encodes name, value pairs as a request body; a name may repeat.
func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

// tokenFor posts a DPoP-proven token request to the demo d as the client
// basic (user:pass, or "" for none) and returns the answer.
func tokenFor(t *testing.T, d *demo, key, basic string, kv ...string) reply {
	t.Helper()
	tokenURL := d.url + "/oauth2/token"
	return curlPost(t, tokenURL, basic, proof(t, key, "-method", "POST", "-url", tokenURL), form(kv...))
}

// accessToken is tokenFor that must succeed; it returns the access token.
func accessToken(t *testing.T, d *demo, key, basic string, kv ...string) string {
	t.Helper()
	r := tokenFor(t, d, key, basic, kv...)
	wantStatus(t, r, http.StatusOK, "token request "+form(kv...))
	if r.str("access_token") == "" {
		t.Fatalf("token response %s", r.body)
	}
	return r.str("access_token")
}

// callAPI calls GET on the demo's API at path (under its issuer) with tok
// and a proof of key.
func callAPI(t *testing.T, d *demo, key, path, tok string) reply {
	t.Helper()
	u := d.url + path
	return curlGet(t, u, "", "Authorization", "DPoP "+tok, "DPoP", proof(t, key, "-method", "GET", "-url", u, "-token", tok))
}

// wantTenant checks an API's answer: 200, the subject and the tenant claim.
func wantTenant(t *testing.T, r reply, sub, tenant, what string) {
	t.Helper()
	wantStatus(t, r, http.StatusOK, what)
	if r.str("sub") != sub || r.str("tenant") != tenant {
		t.Fatalf("%s answered %s; want sub %q and tenant %q", what, r.body, sub, tenant)
	}
}

// wantInvalidToken checks an API's refusal of a token: 401 with a DPoP
// challenge naming invalid_token.
func wantInvalidToken(t *testing.T, r reply, what string) {
	t.Helper()
	wantStatus(t, r, http.StatusUnauthorized, what)
	if www := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(www, "DPoP ") || !strings.Contains(www, `error="invalid_token"`) {
		t.Fatalf("%s: WWW-Authenticate %q, want a DPoP challenge with invalid_token", what, www)
	}
}

// wantError checks an OAuth error answer (RFC 6749 §5.2).
func wantError(t *testing.T, r reply, status int, code, what string) {
	t.Helper()
	wantStatus(t, r, status, what)
	if r.str("error") != code {
		t.Fatalf("%s: %s, want error %s", what, r.body, code)
	}
}

// introspect asks the demo's introspection endpoint about tok as the
// client basic (user:pass).
func introspect(t *testing.T, d *demo, basic, tok string) reply {
	t.Helper()
	return curlPost(t, d.url+"/oauth2/introspect", basic, "", form("token", tok))
}

// audience reads the aud of an introspection answer or JWT claims set: a
// string or an array of strings.
func audience(v any) []string {
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, x := range a {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

// pkce returns a code verifier and its S256 challenge (RFC 7636 §4.2).
func pkce() (verifier, challenge string) {
	verifier = strings.Repeat("v", 32) + fmt.Sprint(time.Now().UnixNano()) // 43 to 128 characters
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestResources checks the demo's two resource servers (RFC 8707), with
// opaque tokens the API looks up in the store and with JWT access tokens:
// each API accepts only the tokens whose audience names it, the demo client
// gets tokens for one, the other or both, the public client for /api only,
// a refresh may narrow the audience, and only demo-rs, the /api resource
// server's client, may introspect, and only tokens meant for /api.
func TestResources(t *testing.T) {
	t.Parallel()
	for _, flags := range [][]string{{}, {"-token-format", "jwt"}} {
		t.Run(strings.Join(append([]string{"server"}, flags...), " "), func(t *testing.T) {
			t.Parallel()
			d := startDemo(t, nil, flags...)
			key := filepath.Join(t.TempDir(), "k.pem")
			api, billing := d.url+"/api", d.url+"/billing"
			const demoCred, rsCred = "demo:demo-secret", "demo-rs:demo-rs-secret"
			wantResourceMetadata(t, d.url, d.url, api, billing)
			jkt := proof(t, key, "-jkt")

			// A token for /api only is refused at /billing.
			apiTok := accessToken(t, d, key, demoCred, "grant_type", "client_credentials", "resource", api)
			r := callAPI(t, d, key, "/api/hello", apiTok)
			wantHello(t, r, "demo", "demo", "read write", jkt)
			wantTenant(t, r, "demo", "default", "GET /api/hello with a token for /api")
			wantInvalidToken(t, callAPI(t, d, key, "/billing/hello", apiTok), "GET /billing/hello with a token for /api")

			// And the other way round.
			billingTok := accessToken(t, d, key, demoCred, "grant_type", "client_credentials", "resource", billing)
			wantTenant(t, callAPI(t, d, key, "/billing/hello", billingTok), "demo", "default", "GET /billing/hello with a token for /billing")
			wantInvalidToken(t, callAPI(t, d, key, "/api/hello", billingTok), "GET /api/hello with a token for /billing")

			// Without a resource parameter, or naming both, the demo
			// client's token is good at both.
			for _, kv := range [][]string{
				{"grant_type", "client_credentials"},
				{"grant_type", "client_credentials", "resource", api, "resource", billing},
			} {
				tok := accessToken(t, d, key, demoCred, kv...)
				wantTenant(t, callAPI(t, d, key, "/api/hello", tok), "demo", "default", "GET /api/hello, "+form(kv...))
				wantTenant(t, callAPI(t, d, key, "/billing/hello", tok), "demo", "default", "GET /billing/hello, "+form(kv...))
			}
			bothTok := accessToken(t, d, key, demoCred, "grant_type", "client_credentials")

			// A resource the client did not register, or that is not an
			// absolute URI, is invalid_target.
			for _, res := range []string{d.url + "/other", d.url, "api"} {
				wantError(t, tokenFor(t, d, key, demoCred, "grant_type", "client_credentials", "resource", res),
					http.StatusBadRequest, "invalid_target", "client credentials for "+res)
			}

			// JWT access tokens carry the audience and the tenant claim.
			if len(flags) > 0 {
				parts := strings.Split(apiTok, ".")
				if len(parts) != 3 {
					t.Fatalf("access token %q is not a JWT", apiTok)
				}
				raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
				var claims map[string]any
				json.Unmarshal(raw, &claims)
				if aud := audience(claims["aud"]); len(aud) != 1 || aud[0] != api || claims["tenant"] != "default" {
					t.Fatalf("JWT claims %s: want aud %s and tenant default", raw, api)
				}
			}

			// Introspection: demo-rs learns of the tokens meant for /api,
			// with the part of the audience it answers to; the others'
			// tokens are inactive to it.
			for _, tok := range []string{apiTok, bothTok} {
				r := introspect(t, d, rsCred, tok)
				wantStatus(t, r, http.StatusOK, "introspection by demo-rs")
				if r.json["active"] != true || r.str("client_id") != "demo" || r.str("tenant") != "default" {
					t.Fatalf("introspection by demo-rs: %s", r.body)
				}
				if aud := audience(r.json["aud"]); len(aud) != 1 || aud[0] != api {
					t.Fatalf("introspection by demo-rs: %s, want aud [%s]", r.body, api)
				}
			}
			r = introspect(t, d, rsCred, billingTok)
			wantStatus(t, r, http.StatusOK, "introspection by demo-rs of a token for /billing")
			if strings.TrimSpace(r.body) != `{"active":false}` {
				t.Fatalf("introspection by demo-rs of a token for /billing: %s, want {\"active\":false}", r.body)
			}
			// The demo client is no resource server, and a public client
			// cannot authenticate.
			wantError(t, introspect(t, d, demoCred, apiTok), http.StatusForbidden, "unauthorized_client", "introspection by demo")
			r = curlPost(t, d.url+"/oauth2/introspect", "", "", form("token", apiTok, "client_id", "demo-public"))
			wantError(t, r, http.StatusUnauthorized, "invalid_client", "introspection by demo-public")

			// The public client may have tokens for /api only: asking for
			// /billing is invalid_target, at the authorization endpoint
			// (an error redirect) and at the code exchange.
			verifier, challenge := pkce()
			authURL := func(resources ...string) string {
				q := url.Values{"response_type": {"code"}, "client_id": {"demo-public"}, "redirect_uri": {redirectURI},
					"scope": {"read"}, "state": {"s1"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
					"dpop_jkt": {jkt}, "resource": resources}
				return d.url + "/oauth2/authorize?" + q.Encode()
			}
			r = curlGet(t, authURL(billing), "alice:wonderland")
			wantStatus(t, r, http.StatusFound, "authorization request of demo-public for /billing")
			if loc, err := url.Parse(r.header.Get("Location")); err != nil || loc.Query().Get("error") != "invalid_target" {
				t.Fatalf("authorization request of demo-public for /billing: redirect to %s, want error=invalid_target", r.header.Get("Location"))
			}
			exchange := func(code string, resources ...string) reply {
				kv := []string{"grant_type", "authorization_code", "code", code, "redirect_uri", redirectURI,
					"client_id", "demo-public", "code_verifier", verifier}
				for _, res := range resources {
					kv = append(kv, "resource", res)
				}
				return tokenFor(t, d, key, "", kv...)
			}
			wantError(t, exchange(authorize(t, d, authURL(), "s1"), billing), http.StatusBadRequest, "invalid_target",
				"code exchange of demo-public for /billing")
			r = exchange(authorize(t, d, authURL(), "s1"))
			wantStatus(t, r, http.StatusOK, "code exchange of demo-public")
			pubTok := r.str("access_token")
			wantTenant(t, callAPI(t, d, key, "/api/hello", pubTok), "alice", "default", "GET /api/hello with demo-public's token")
			wantInvalidToken(t, callAPI(t, d, key, "/billing/hello", pubTok), "GET /billing/hello with demo-public's token")

			// A refresh narrows the demo client's grant for both APIs to
			// one (RFC 8707 §2.2), never widens it.
			q := url.Values{"response_type": {"code"}, "client_id": {"demo"}, "redirect_uri": {redirectURI},
				"scope": {"read"}, "state": {"s2"}, "dpop_jkt": {jkt}}
			code := authorize(t, d, d.url+"/oauth2/authorize?"+q.Encode(), "s2")
			r = tokenFor(t, d, key, demoCred, "grant_type", "authorization_code", "code", code, "redirect_uri", redirectURI)
			wantStatus(t, r, http.StatusOK, "code exchange of demo")
			refresh := r.str("refresh_token")
			wantTenant(t, callAPI(t, d, key, "/billing/hello", r.str("access_token")), "alice", "default", "GET /billing/hello with demo's code token")
			r = tokenFor(t, d, key, demoCred, "grant_type", "refresh_token", "refresh_token", refresh, "resource", billing)
			wantStatus(t, r, http.StatusOK, "refresh narrowed to /billing")
			narrowed := r.str("access_token")
			if rt := r.str("refresh_token"); rt != "" {
				refresh = rt
			}
			wantTenant(t, callAPI(t, d, key, "/billing/hello", narrowed), "alice", "default", "GET /billing/hello after narrowing to /billing")
			wantInvalidToken(t, callAPI(t, d, key, "/api/hello", narrowed), "GET /api/hello after narrowing to /billing")
			wantError(t, tokenFor(t, d, key, demoCred, "grant_type", "refresh_token", "refresh_token", refresh, "resource", d.url+"/other"),
				http.StatusBadRequest, "invalid_target", "refresh for a resource outside the grant")
		})
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestIssuerPath runs the demo with an issuer that has a path, as a tenant
// of a shared host: the metadata is where RFC 8414 §3.1 puts it and names
// that issuer, and every endpoint and API is under the path.
func TestIssuerPath(t *testing.T) {
	t.Parallel()
	for _, flags := range [][]string{{}, {"-token-format", "jwt"}} {
		t.Run(strings.Join(append([]string{"server"}, flags...), " "), func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			origin := "http://127.0.0.1:" + port
			issuer := origin + "/tenant1"
			d := startDemo(t, nil, append([]string{"-addr", "127.0.0.1:" + port, "-issuer", issuer + "/"}, flags...)...)
			if d.url != issuer {
				t.Fatalf("the banner names %s, want %s", d.url, issuer)
			}
			md := curlGet(t, origin+"/.well-known/oauth-authorization-server/tenant1", "")
			wantStatus(t, md, http.StatusOK, "authorization server metadata of the tenant")
			if md.str("issuer") != issuer || md.str("token_endpoint") != issuer+"/oauth2/token" ||
				md.str("introspection_endpoint") != issuer+"/oauth2/introspect" {
				t.Fatalf("authorization server metadata: %s", md.body)
			}
			wantStatus(t, curlGet(t, origin+"/.well-known/oauth-authorization-server", ""), http.StatusNotFound, "metadata at the host's root")
			wantResourceMetadata(t, origin, issuer, issuer+"/api", issuer+"/billing")

			key := filepath.Join(t.TempDir(), "k.pem")
			const demoCred = "demo:demo-secret"
			tok := accessToken(t, d, key, demoCred, "grant_type", "client_credentials", "resource", issuer+"/api")
			r := callAPI(t, d, key, "/api/hello", tok)
			wantHello(t, r, "demo", "demo", "read write", proof(t, key, "-jkt"))
			wantTenant(t, r, "demo", "tenant1", "GET /tenant1/api/hello")
			wantInvalidToken(t, callAPI(t, d, key, "/billing/hello", tok), "GET /tenant1/billing/hello with a token for /tenant1/api")
			tok = accessToken(t, d, key, demoCred, "grant_type", "client_credentials")
			wantTenant(t, callAPI(t, d, key, "/billing/hello", tok), "demo", "tenant1", "GET /tenant1/billing/hello")
			// Nothing outside the issuer's path.
			wantStatus(t, curlPost(t, origin+"/oauth2/token", demoCred, "", "grant_type=client_credentials"), http.StatusNotFound, "POST /oauth2/token")
			wantStatus(t, curlGet(t, origin+"/api/hello", "", "Authorization", "DPoP "+tok), http.StatusNotFound, "GET /api/hello")
			// demo-rs introspects under the path too.
			r = introspect(t, d, "demo-rs:demo-rs-secret", tok)
			if aud := audience(r.json["aud"]); r.json["active"] != true || len(aud) != 1 || aud[0] != issuer+"/api" || r.str("tenant") != "tenant1" {
				t.Fatalf("introspection by demo-rs: %d %s", r.status, r.body)
			}

			// The example client, given the issuer, finds everything.
			for _, mode := range []string{"cc", "code"} {
				out, _ := run(t, "client", "-issuer", issuer, "-mode", mode)
				if !strings.Contains(out, "SUCCESS: "+mode+" flow done") || !strings.Contains(out, `"tenant": "tenant1"`) {
					t.Fatalf("client -issuer %s -mode %s:\n%s", issuer, mode, out)
				}
			}
		})
	}
}
