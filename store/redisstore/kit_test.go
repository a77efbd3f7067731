package redisstore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/middleware"
	"github.com/dpopkit/dpop/store"
	"github.com/dpopkit/dpop/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// TestInstances: two instances of a service over one Redis prefix (a fresh
// one for each subtest) act as one service. Each instance has a client of
// its own, as two processes would.
func TestInstances(t *testing.T) {
	ca, cb := newClient(t), newClient(t)
	adaptertest.RunInstances(t, func(t *testing.T) (store.Store, store.Store, func()) {
		prefix := freshPrefix()
		var stores [2]*redisstore.Store
		for i, c := range []redis.UniversalClient{ca, cb} {
			s, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			stores[i] = s
		}
		return stores[0], stores[1], func() {
			stores[0].Close()
			stores[1].Close()
			deleteUnder(t, ca, prefix)
		}
	})
}

// A kit (authorization server and protected API) over Redis, for the outage
// test and the benchmarks. Its public URL, which every proof's htu names,
// is not where it listens.

const (
	publicURL  = "https://api.example.test"
	apiPath    = "/api/data"
	confID     = "conf" // confidential, DPoP-bound, client credentials
	confSecret = "conf-secret-0123456789abcdef0123456789"
)

var tokenPath = handlers.DefaultPaths.Token

// kit is handlers and middleware on a Redis store, behind a loopback
// listener.
type kit struct {
	t  *testing.T
	ts *httptest.Server
}

// newKit starts a kit over c and prefix, with the confidential client
// registered.
func newKit(t *testing.T, c redis.UniversalClient, prefix string) *kit {
	t.Helper()
	s, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	must(t, s.SaveClient(bg, &store.Client{ID: confID, SecretHash: store.HashSecret(confSecret),
		GrantTypes: []string{handlers.GrantClientCredentials}, Scopes: []string{"read"}, DPoPBound: true}))
	srv, err := handlers.New(handlers.Config{Issuer: publicURL, Store: s})
	must(t, err)
	mw, err := middleware.New(middleware.Options{ResourceURL: publicURL, Validator: middleware.StoreValidator{Store: s},
		DPoP: dpop.VerifierOptions{ReplayCache: s}})
	must(t, err)
	mux := http.NewServeMux()
	srv.Mount(mux)
	mux.Handle(apiPath, mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return &kit{t: t, ts: ts}
}

func newSigner(tb testing.TB) *dpop.Signer {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := dpop.NewSigner(k, dpop.SignerOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// proof is a fresh proof for a request to path at the public URL.
func proof(tb testing.TB, s *dpop.Signer, method, path string, opts dpop.ProofOptions) string {
	tb.Helper()
	p, err := s.Proof(method, publicURL+path, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// reply is a decoded response.
type reply struct {
	status int
	body   map[string]any
	raw    string
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

// send sends a request with a fresh proof by s: with token, a call of the
// API; without, a client credentials token request of the confidential
// client.
func (k *kit) send(s *dpop.Signer, token string) reply {
	k.t.Helper()
	method, path, body := "GET", apiPath, io.Reader(nil)
	if token == "" {
		method, path = "POST", tokenPath
		body = strings.NewReader(url.Values{"grant_type": {handlers.GrantClientCredentials}}.Encode())
	}
	req, err := http.NewRequest(method, k.ts.URL+path, body)
	must(k.t, err)
	req.Header.Set("DPoP", proof(k.t, s, method, path, dpop.ProofOptions{AccessToken: token}))
	if token == "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(confID, confSecret)
	} else {
		req.Header.Set("Authorization", "DPoP "+token)
	}
	resp, err := k.ts.Client().Do(req)
	must(k.t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r
}

// clientCredentials asks for a token with a proof by s.
func (k *kit) clientCredentials(s *dpop.Signer) reply { k.t.Helper(); return k.send(s, "") }

// apiWith calls the API with token and a proof by s.
func (k *kit) apiWith(s *dpop.Signer, token string) reply { k.t.Helper(); return k.send(s, token) }

func wantStatus(t *testing.T, what string, r reply, status int, code string) {
	t.Helper()
	if r.status != status || (code != "" && r.str("error") != code) {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, strings.TrimSpace(r.raw), status, code)
	}
}

// switchDialer connects to the live Redis while up, and to a closed port
// while down; going down closes the connections it made, as a Redis restart
// or a network failure would.
type switchDialer struct {
	live  string
	mu    sync.Mutex
	up    bool
	conns []net.Conn
}

func (d *switchDialer) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	addr := "127.0.0.1:1"
	if d.up {
		addr = d.live
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *switchDialer) set(up bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.up = up
	if !up {
		for _, c := range d.conns {
			c.Close()
		}
		d.conns = nil
	}
}

// TestKitRedisOutage: with Redis away, a token request and an API call are
// answered 503 server_error quickly; when it is back, the same store, in
// the same server, works again.
func TestKitRedisOutage(t *testing.T) {
	opts := redisOptions(t)
	d := &switchDialer{live: opts.Addr, up: true}
	opts.Dialer = d.dial
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 200*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	opts.MaxRetries, opts.DialerRetries = 1, 1
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	prefix := freshPrefix()
	setup := newClient(t)
	t.Cleanup(func() { deleteUnder(t, setup, prefix) })
	k := newKit(t, c, prefix)
	s := newSigner(t)

	r := k.clientCredentials(s)
	wantStatus(t, "token request with Redis up", r, http.StatusOK, "")
	tok := r.str("access_token")
	wantStatus(t, "API call with Redis up", k.apiWith(s, tok), http.StatusOK, "")

	d.set(false)
	for _, call := range []struct {
		name string
		do   func() reply
	}{
		{"token request", func() reply { return k.clientCredentials(s) }},
		{"API call", func() reply { return k.apiWith(s, tok) }},
	} {
		start := time.Now()
		r := call.do()
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("%s with Redis down took %v", call.name, el)
		}
		wantStatus(t, call.name+" with Redis down", r, http.StatusServiceUnavailable, "server_error")
	}

	d.set(true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := k.clientCredentials(s)
		if r.status == http.StatusOK {
			wantStatus(t, "API call after recovery", k.apiWith(s, r.str("access_token")), http.StatusOK, "")
			wantStatus(t, "API call with the old token after recovery", k.apiWith(s, tok), http.StatusOK, "")
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after Redis came back: %d %s", r.status, r.raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
