package examples_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// scrape reads the demo's /metrics (at the root of its address).
func scrape(t *testing.T, d *demo) string {
	t.Helper()
	r := curlGet(t, "http://"+d.bound(t)+"/metrics", "")
	wantStatus(t, r, http.StatusOK, "GET /metrics")
	return r.body
}

// TestMetrics drives the demo through a scripted sequence and reads the
// exact counter values at /metrics: 3 client credentials tokens, 1 token
// request refused for its proof, 1 API call.
func TestMetrics(t *testing.T) {
	t.Parallel()
	d := startDemo(t, nil)
	key := filepath.Join(t.TempDir(), "k.pem")
	for i := 0; i < 3; i++ {
		accessToken(t, d, key, "demo:demo-secret", "grant_type", "client_credentials")
	}
	tok := accessToken(t, d, key, "demo:demo-secret", "grant_type", "client_credentials", "resource", d.url+"/api")
	tokenURL := d.url + "/oauth2/token"
	r := curlPost(t, tokenURL, "demo:demo-secret", proof(t, key, "-method", "GET", "-url", tokenURL), form("grant_type", "client_credentials"))
	wantError(t, r, http.StatusBadRequest, "invalid_dpop_proof", "a proof for GET at the token endpoint")
	r = callAPI(t, d, key, "/api/hello", tok)
	wantStatus(t, r, http.StatusOK, "GET /api/hello")

	text := scrape(t, d)
	for _, line := range []string{
		`oauth_tokens_issued_total{grant_type="client_credentials"} 4`,
		`oauth_token_errors_total{error="invalid_dpop_proof",grant_type="client_credentials"} 1`,
		`dpop_proofs_total{endpoint="token",reason="",result="accepted"} 4`,
		`dpop_proofs_total{endpoint="token",reason="htm",result="refused"} 1`,
		`dpop_proofs_total{endpoint="resource",reason="",result="accepted"} 1`,
		`dpop_store_duration_seconds_count{operation="replay_insert",result="ok"} 5`,
		`dpop_replay_cache_entries 5`,
	} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("no line %s at /metrics:\n%s", line, text)
		}
	}
	for _, absent := range []string{"oauth_resource_refusals_total{", "otel_scope_name", `result="error"`} {
		if strings.Contains(text, absent) {
			t.Errorf("/metrics has %s:\n%s", absent, text)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		wantStatus(t, curlGet(t, "http://"+d.bound(t)+path, ""), http.StatusOK, "GET "+path)
	}
	if !strings.Contains(d.stdout.String(), "/metrics (Prometheus metrics)") {
		t.Errorf("the banner does not name /metrics:\n%s", d.stdout)
	}
}

// TestOperationsAtRoot: under an issuer with a path, /metrics, /healthz
// and /readyz stay at the root of the address.
func TestOperationsAtRoot(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	d := startDemo(t, nil, "-addr", "127.0.0.1:"+port, "-issuer", "http://127.0.0.1:"+port+"/tenant1")
	base := "http://127.0.0.1:" + port
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		wantStatus(t, curlGet(t, base+path, ""), http.StatusOK, "GET "+path)
		wantStatus(t, curlGet(t, d.url+path, ""), http.StatusNotFound, "GET /tenant1"+path)
	}
}

// tcpProxy forwards connections from its own address to target; stop
// closes the listener and every connection, start listens again on the
// same address.
type tcpProxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{target: target, addr: "127.0.0.1:0", conns: map[net.Conn]struct{}{}}
	p.start(t)
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ln, err = net.Listen("tcp", p.addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *tcpProxy) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c) || !p.track(up) {
		c.Close()
		up.Close()
		return
	}
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

func (p *tcpProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// waitReady polls /readyz until it answers status.
func waitReady(t *testing.T, base string, status int, what string) {
	t.Helper()
	var last reply
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if last = curlGet(t, base+"/readyz", ""); last.status == status {
			return
		}
	}
	t.Fatalf("%s: /readyz answers %d %s, want %d", what, last.status, last.body, status)
}

// TestReadiness: /readyz is 200 while the shared store answers, 503 once
// it cannot be reached (the proxy in front of it closed), 200 again when it
// is back; /healthz stays 200 throughout.
func TestReadiness(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ kind, env, flag string }{
		{"redis", "DPOPKIT_REDIS_URL", "-redis-url"},
		{"postgres", "DPOPKIT_POSTGRES_URL", "-postgres-url"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			raw := os.Getenv(tc.env)
			if raw == "" {
				t.Skipf("%s is not set (CI sets it; see the README)", tc.env)
			}
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			p := newTCPProxy(t, u.Host)
			u.Host = p.addr
			d := startDemo(t, nil, "-store", tc.kind, tc.flag, u.String(), "-store-namespace", "dpopkit_examples_ready")
			base := "http://" + d.bound(t)
			waitReady(t, base, http.StatusOK, tc.kind+" reachable")
			p.stop()
			waitReady(t, base, http.StatusServiceUnavailable, tc.kind+" gone")
			wantStatus(t, curlGet(t, base+"/healthz", ""), http.StatusOK, "GET /healthz with the store gone")
			p.start(t)
			waitReady(t, base, http.StatusOK, tc.kind+" back")
			if text := scrape(t, d); !strings.Contains(text, `dpop_store_duration_seconds_count{operation="ping",result="error"}`) {
				t.Errorf("no failed ping at /metrics:\n%s", text)
			}
		})
	}
}
