package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/internal/testkit"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/middleware"
	"github.com/dpopkit/dpop/store"
)

// newTestSigner is an ES256 signer whose clock is now shifted by skew.
func newTestSigner(t testing.TB, skew time.Duration) *dpop.Signer {
	t.Helper()
	return dpoptest.NewSignerWith(t, dpop.SignerOptions{Now: func() time.Time { return time.Now().Add(skew) }})
}

// newReferenceServer runs the reference handler on an httptest server whose
// address is its htu base.
func newReferenceServer(t testing.TB) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	ts.Config.Handler = newReferenceHandler("http://"+ts.Listener.Addr().String(), nil, nil)
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// newKitServer wires the kit as examples/server does, from the packages:
// handlers (the token endpoint) and middleware (GET /api/hello) over one
// memory store, with the demo's confidential client. nonces may be nil.
func newKitServer(t testing.TB, nonces dpop.NonceSource) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	// Room for every proof of a few seconds at full speed: a full replay
	// cache would refuse (503) and count as failures.
	m, err := store.NewMemory(store.MemoryOptions{MaxReplayEntries: 2_000_000, MaxAccessTokens: 2_000_000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	err = m.SaveClient(context.Background(), &store.Client{
		ID:         "demo",
		SecretHash: store.HashSecret("demo-secret"),
		GrantTypes: []string{handlers.GrantClientCredentials},
		Scopes:     []string{"read", "write"},
		DPoPBound:  true,
	})
	if err != nil {
		t.Fatal(err)
	}
	v := dpop.VerifierOptions{Nonces: nonces}
	as, protect := testkit.AuthServer(t, issuer, m, v), testkit.Protect(t, issuer, m, v)
	mux := http.NewServeMux()
	as.Mount(mux)
	mux.Handle("GET /api/hello", protect(middleware.RequireScope("read")(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			p, _ := middleware.PrincipalFrom(r.Context())
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]string{"message": "hello, " + p.Subject})
		}))))
	ts.Config.Handler = mux
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// refReply sends one request to the reference and returns status and body.
func refReply(t *testing.T, method, target, token string, proofs ...string) (int, string) {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader("grant_type=client_credentials")
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "DPoP "+token)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// tamper changes one byte of the decoded signature of a compact JWS.
func tamper(t *testing.T, jws string) string {
	t.Helper()
	i := strings.LastIndexByte(jws, '.')
	sig, err := b64url.DecodeString(jws[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	sig[10] ^= 0x01
	return jws[:i+1] + b64url.EncodeToString(sig)
}

func TestReferenceServer(t *testing.T) {
	ts := newReferenceServer(t)
	tokenURL, apiURL := ts.URL+tokenPath, ts.URL+apiPath
	s := newTestSigner(t, 0)
	other := newTestSigner(t, 0)
	const token = "ref"

	// A proof by one key with the signature of another key's proof for the
	// same request: well formed, wrong signature.
	mine := dpoptest.Proof(t, s, "POST", tokenURL, dpop.ProofOptions{})
	theirs := dpoptest.Proof(t, other, "POST", tokenURL, dpop.ProofOptions{})
	swapped := mine[:strings.LastIndexByte(mine, '.')] + theirs[strings.LastIndexByte(theirs, '.'):]

	tests := []struct {
		name       string
		method     string
		target     string
		token      string
		proofs     []string
		wantStatus int
		wantBody   string
	}{
		{"token: valid proof", "POST", tokenURL, "", []string{dpoptest.Proof(t, s, "POST", tokenURL, dpop.ProofOptions{})},
			200, `{"access_token":"ref","token_type":"DPoP","expires_in":3600}`},
		{"api: valid proof with ath", "GET", apiURL, token, []string{dpoptest.Proof(t, s, "GET", apiURL, dpop.ProofOptions{AccessToken: token})},
			200, `"message"`},
		{"token: tampered signature", "POST", tokenURL, "", []string{tamper(t, dpoptest.Proof(t, s, "POST", tokenURL, dpop.ProofOptions{}))},
			400, "signature does not verify"},
		{"token: another key's signature", "POST", tokenURL, "", []string{swapped},
			400, "signature does not verify"},
		{"api: tampered signature", "GET", apiURL, token, []string{tamper(t, dpoptest.Proof(t, s, "GET", apiURL, dpop.ProofOptions{AccessToken: token}))},
			401, "signature does not verify"},
		{"token: wrong htu", "POST", tokenURL, "", []string{dpoptest.Proof(t, s, "POST", "http://other.example"+tokenPath, dpop.ProofOptions{})},
			400, "htu does not match"},
		{"token: htu of the API", "POST", tokenURL, "", []string{dpoptest.Proof(t, s, "POST", apiURL, dpop.ProofOptions{})},
			400, "htu does not match"},
		{"token: wrong htm", "POST", tokenURL, "", []string{dpoptest.Proof(t, s, "GET", tokenURL, dpop.ProofOptions{})},
			400, "htm does not match"},
		{"token: stale iat", "POST", tokenURL, "", []string{dpoptest.Proof(t, newTestSigner(t, -2*time.Minute), "POST", tokenURL, dpop.ProofOptions{})},
			400, "iat is outside"},
		{"token: iat in the future", "POST", tokenURL, "", []string{dpoptest.Proof(t, newTestSigner(t, time.Minute), "POST", tokenURL, dpop.ProofOptions{})},
			400, "iat is outside"},
		{"api: wrong ath", "GET", apiURL, token, []string{dpoptest.Proof(t, s, "GET", apiURL, dpop.ProofOptions{AccessToken: "another-token"})},
			401, "ath does not match"},
		{"api: no ath", "GET", apiURL, token, []string{dpoptest.Proof(t, s, "GET", apiURL, dpop.ProofOptions{})},
			401, "ath does not match"},
		{"api: no token", "GET", apiURL, "", []string{dpoptest.Proof(t, s, "GET", apiURL, dpop.ProofOptions{AccessToken: token})},
			401, "Authorization: DPoP"},
		{"token: no proof", "POST", tokenURL, "", nil, 400, "exactly one DPoP header"},
		{"token: two proofs", "POST", tokenURL, "", []string{dpoptest.Proof(t, s, "POST", tokenURL, dpop.ProofOptions{}), dpoptest.Proof(t, s, "POST", tokenURL, dpop.ProofOptions{})},
			400, "exactly one DPoP header"},
		{"token: not a JWS", "POST", tokenURL, "", []string{"a.b"}, 400, "not a compact JWS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := refReply(t, tc.method, tc.target, tc.token, tc.proofs...)
			if status != tc.wantStatus || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("got %d %s, want %d and %q", status, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestVerifyReferenceProofHeader(t *testing.T) {
	now := time.Now()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b64url.EncodeToString(b)
	}
	payload := enc(map[string]any{"jti": "x", "htm": "POST", "htu": "http://a/oauth2/token", "iat": now.Unix()})
	sig := b64url.EncodeToString(make([]byte, 64))
	s := newTestSigner(t, 0)
	var jwk map[string]string
	if err := json.Unmarshal(s.PublicJWK(), &jwk); err != nil {
		t.Fatal(err)
	}
	offCurve := map[string]string{"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["x"]}
	for name, hdr := range map[string]any{
		"HS256":         map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": jwk},
		"typ JWT":       map[string]any{"typ": "JWT", "alg": "ES256", "jwk": jwk},
		"no jwk":        map[string]any{"typ": "dpop+jwt", "alg": "ES256"},
		"P-384 curve":   map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": map[string]string{"kty": "EC", "crv": "P-384", "x": jwk["x"], "y": jwk["y"]}},
		"off the curve": map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": offCurve},
		"private key":   map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": map[string]string{"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"], "d": jwk["x"]}},
	} {
		if _, err := verifyReferenceProof(enc(hdr)+"."+payload+"."+sig, "POST", "http://a/oauth2/token", "", now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The same header with the real key and a real signature passes, so the
	// refusals above are about the header.
	good := dpoptest.Proof(t, s, "POST", "http://a/oauth2/token", dpop.ProofOptions{})
	if _, err := verifyReferenceProof(good, "POST", "http://a/oauth2/token", "", time.Now()); err != nil {
		t.Fatalf("valid proof refused: %v", err)
	}
}

// TestCompareInProcess runs a short comparison of the in-process kit with the
// in-process reference on both targets: every request must succeed, and the
// table must show both servers.
func TestCompareInProcess(t *testing.T) {
	kit, ref := newKitServer(t, nil), newReferenceServer(t)
	var out, progress bytes.Buffer
	opts := compareOptions{
		Targets: []string{targetToken, targetAPI},
		Load: loadOptions{
			Conns: 4, Duration: 2 * time.Second, Warmup: 300 * time.Millisecond, IATAhead: -1,
			ClientID: "demo", ClientSecret: "demo-secret", Progress: &progress,
		},
		JSON: true,
	}
	all, err := runCompare(context.Background(), opts, fixed(endpoint{URL: ref.URL}), fixed(endpoint{URL: kit.URL}), &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	t.Logf("\n%s", out.String())
	if len(all) != 2 {
		t.Fatalf("%d comparisons, want 2", len(all))
	}
	for _, c := range all {
		for _, r := range []*result{c.Ref, c.Kit} {
			if r.Requests == 0 || r.OK != r.Requests || r.Failures != 0 {
				t.Errorf("%s %s: %d requests, %d ok, %d failures %+v", r.Server, r.Target, r.Requests, r.OK, r.Failures, r.FailureSamples)
			}
			if r.RPS <= 0 || r.P50ms <= 0 || r.P99ms < r.P50ms {
				t.Errorf("%s %s: implausible figures %+v", r.Server, r.Target, r)
			}
		}
		if c.RPSRatio <= 0 || c.P99Ratio <= 0 {
			t.Errorf("%s: ratios %v %v", c.Target, c.RPSRatio, c.P99Ratio)
		}
	}
	text := out.String()
	for _, row := range []string{`token\s+reference\s+4\s`, `token\s+kit\s+4\s`, `token\s+kit/reference\s`, `api\s+reference\s+4\s`, `api\s+kit\s+4\s`, `api\s+kit/reference\s`} {
		if !regexp.MustCompile(`(?m)^\s*` + row).MatchString(text) {
			t.Errorf("output lacks a row matching %q", row)
		}
	}
	if n := strings.Count(text, `{"target":`); n != 2 {
		t.Errorf("%d JSON lines, want 2", n)
	}
}

// TestRunOutOfProofs: with -n and no -d the run stops when the proofs are
// used, and since the kit refuses a replayed proof, zero failures shows that
// none was sent twice.
func TestRunOutOfProofs(t *testing.T) {
	kit := newKitServer(t, nil)
	r, err := runLoad(context.Background(), loadOptions{
		URL: kit.URL, Target: targetToken, Conns: 3, Proofs: 200, IATAhead: -1,
		ClientID: "demo", ClientSecret: "demo-secret",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.RanOut || r.Requests != 200 || r.OK != 200 || r.Failures != 0 {
		t.Fatalf("ran out %v, %d requests, %d ok, %d failures %+v", r.RanOut, r.Requests, r.OK, r.Failures, r.FailureSamples)
	}
}

// TestFailuresAreCounted: proofs a server refuses show up as failures, with
// their bodies.
func TestFailuresAreCounted(t *testing.T) {
	kit := newKitServer(t, nil)
	g, err := newGenerator(loadOptions{URL: kit.URL, Target: targetToken, Conns: 2, Proofs: 10, ClientID: "demo", ClientSecret: "demo-secret"})
	if err != nil {
		t.Fatal(err)
	}
	p := dpoptest.Proof(t, g.signer, "POST", kit.URL+tokenPath, dpop.ProofOptions{})
	stale := dpoptest.Proof(t, newTestSigner(t, -5*time.Minute), "POST", kit.URL+tokenPath, dpop.ProofOptions{})
	res := g.phase(context.Background(), []string{p, p, p, stale}, time.Time{})
	if res.requests != 4 || res.ok != 1 || res.failures != 3 {
		t.Fatalf("%d requests, %d ok, %d failures", res.requests, res.ok, res.failures)
	}
	if len(res.samples) != 2 || res.samples[0].Status != 400 || !strings.Contains(res.samples[0].Body+res.samples[1].Body, "invalid_dpop_proof") {
		t.Fatalf("samples %+v", res.samples)
	}
}

// TestServerNonces: against a kit that requires nonces, the generator picks
// up the nonce it offers and signs with it.
func TestServerNonces(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	nonces, err := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	kit := newKitServer(t, nonces)
	for _, target := range []string{targetToken, targetAPI} {
		r, err := runLoad(context.Background(), loadOptions{
			URL: kit.URL, Target: target, Conns: 2, Proofs: 100, IATAhead: -1,
			ClientID: "demo", ClientSecret: "demo-secret",
		})
		if err != nil {
			t.Fatal(err)
		}
		if !r.Nonce || r.OK != 100 || r.Failures != 0 {
			t.Fatalf("%s: nonce %v, %d ok, %d failures %+v", target, r.Nonce, r.OK, r.Failures, r.FailureSamples)
		}
	}
}

func TestWrongClientSecretStopsEarly(t *testing.T) {
	kit := newKitServer(t, nil)
	_, err := runLoad(context.Background(), loadOptions{
		URL: kit.URL, Target: targetAPI, Conns: 2, Proofs: 10, ClientID: "demo", ClientSecret: "wrong",
	})
	if err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("got %v, want a refusal naming invalid_client", err)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.9: 90 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond} {
		if got := percentile(d, q); got != want {
			t.Errorf("p%v = %v, want %v", q*100, got, want)
		}
	}
	if percentile(nil, 0.5) != 0 || percentile(d[:1], 0.99) != time.Millisecond {
		t.Error("edge cases")
	}
}

func TestParseVmRSS(t *testing.T) {
	kb, err := parseVmRSS([]byte("Name:\tserver\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads:\t7\n"))
	if err != nil || kb != 12345 {
		t.Fatalf("got %d, %v", kb, err)
	}
	if _, err := parseVmRSS([]byte("Name:\tx\n")); err == nil {
		t.Fatal("no VmRSS accepted")
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-compare", "-spawn", "-store", "redis", "-redis-url", "redis://x"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if ts, _ := cfg.targets(); strings.Join(ts, ",") != "token,api" {
		t.Errorf("compare targets %v", ts)
	}
	if got := strings.Join(cfg.serverArgs(), " "); got != "-store redis -token-format opaque -quota-client 100000000 -quota-token 100000000 -redis-url redis://x" {
		t.Errorf("server args %q", got)
	}
	cfg, err = parseFlags([]string{"-compare", "-spawn", "-store", "redis", "-redis-cluster", "-redis-replicas", "1", "-redis-url", "redis://x?addr=y"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.serverArgs(), " "); !strings.HasSuffix(got, " -redis-url redis://x?addr=y -redis-cluster -redis-replicas 1") {
		t.Errorf("server args for a cluster %q", got)
	}
	cfg, _ = parseFlags(nil, io.Discard)
	if ts, _ := cfg.targets(); strings.Join(ts, ",") != "token" {
		t.Errorf("default targets %v", ts)
	}
	for _, bad := range [][]string{
		{"-store", "redis"},              // needs -spawn
		{"-redis-replicas", "1"},         // needs -spawn
		{"-spawn"},                       // needs -compare
		{"-c", "0"},                      // no connections
		{"-d", "0"},                      // neither -d nor -n
		{"-serve-reference", "-compare"}, // two modes
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	cfg, _ = parseFlags([]string{"-target", "api,nope"}, io.Discard)
	if _, err := cfg.targets(); err == nil {
		t.Error("unknown target accepted")
	}
}

// nopReplay accepts every proof, so that a benchmark measures the rest.
type nopReplay struct{}

func (nopReplay) Insert(context.Context, dpop.ReplayKey, time.Duration) (bool, error) {
	return true, nil
}

// The proof checks alone, reference and kit, on the same proofs.
func BenchmarkVerify(b *testing.B) {
	const u = "http://127.0.0.1:8080/oauth2/token"
	s := newTestSigner(b, 0)
	proofs := make([]string, 4096)
	for i := range proofs {
		proofs[i] = dpoptest.Proof(b, s, "POST", u, dpop.ProofOptions{})
	}
	b.Run("reference", func(b *testing.B) {
		now := time.Now()
		for i := 0; b.Loop(); i++ {
			if _, err := verifyReferenceProof(proofs[i%len(proofs)], "POST", u, "", now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("kit", func(b *testing.B) {
		v, err := dpop.NewVerifier(dpop.VerifierOptions{BaseURL: "http://127.0.0.1:8080", ReplayCache: nopReplay{}})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; b.Loop(); i++ {
			if _, err := v.Verify(context.Background(), dpop.Request{Method: "POST", URL: u, Proofs: proofs[i%len(proofs) : i%len(proofs)+1]}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestParseStatCPU(t *testing.T) {
	// Fields 14 and 15 (utime, stime) are 250 and 50 ticks; the command
	// name holds a space and a parenthesis.
	stat := "4242 (my (server)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 12345 1000000 500\n"
	d, err := parseStatCPU([]byte(stat))
	if err != nil || d != 3*time.Second {
		t.Fatalf("got %v, %v; want 3s", d, err)
	}
	if _, err := parseStatCPU([]byte("4242 (x) S 1 2")); err == nil {
		t.Fatal("short stat accepted")
	}
	if _, err := readCPU(os.Getpid()); err != nil && runtime.GOOS == "linux" {
		t.Fatalf("own stat: %v", err)
	}
}

// BenchmarkKitUnderLoad drives the in-process kit with 8 connections for 5
// seconds per iteration and reports requests per second; with go test's
// -cpuprofile it is the way to profile the kit under load, since the demo
// server exposes no pprof endpoint (LOADGEN_TARGET chooses token or api,
// default token). The profile holds loadgen's client side too; focus on the
// server with -focus 'ServeHTTP$' or a package name.
//
//	go test -run '^$' -bench KitUnderLoad -benchtime 1x -cpuprofile /tmp/kit.prof ./loadgen
func BenchmarkKitUnderLoad(b *testing.B) {
	target := os.Getenv("LOADGEN_TARGET")
	if target == "" {
		target = targetToken
	}
	kit := newKitServer(b, nil)
	for range b.N {
		r, err := runLoad(context.Background(), loadOptions{URL: kit.URL, Target: target, Conns: 8, Duration: 5 * time.Second,
			Warmup: time.Second, IATAhead: -1, ClientID: "demo", ClientSecret: "demo-secret"})
		if err != nil {
			b.Fatal(err)
		}
		if r.Failures != 0 {
			b.Fatalf("%d failures, e.g. %+v", r.Failures, r.FailureSamples)
		}
		b.ReportMetric(r.RPS, "req/s")
	}
}

// TestRate: a paced run sends about rate × duration requests.
func TestRate(t *testing.T) {
	ref := newReferenceServer(t)
	r, err := runLoad(context.Background(), loadOptions{
		URL: ref.URL, Target: targetToken, Conns: 4, Duration: time.Second, Rate: 200, Proofs: 1000, IATAhead: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests < 150 || r.Requests > 201 || r.Failures != 0 {
		t.Fatalf("%d requests (%d failures) at 200/s for 1s", r.Requests, r.Failures)
	}
}
