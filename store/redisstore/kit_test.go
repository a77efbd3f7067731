package redisstore_test

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/internal/testkit"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// TestInstances: two instances of a service over one Redis prefix (a fresh
// one for each subtest) act as one service. Each instance has a client of
// its own, as two processes would.
func TestInstances(t *testing.T) {
	adaptertest.RunInstances(t, instanceStores(newClient(t), newClient(t)))
}

// newKit starts a kit over c and prefix, with the kit's clients
// registered.
func newKit(t *testing.T, c redis.UniversalClient, prefix string) *testkit.Kit {
	t.Helper()
	s, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	testkit.RegisterClients(t, s)
	return testkit.New(t, s, testkit.Options{})
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
	s := dpoptest.NewSigner(t)

	r := k.ClientCredentials(t, s)
	testkit.WantStatus(t, "token request with Redis up", r, http.StatusOK, "")
	tok := r.Str("access_token")
	testkit.WantStatus(t, "API call with Redis up", k.APIWith(t, s, tok), http.StatusOK, "")

	d.set(false)
	for _, call := range []struct {
		name string
		do   func() testkit.Reply
	}{
		{"token request", func() testkit.Reply { return k.ClientCredentials(t, s) }},
		{"API call", func() testkit.Reply { return k.APIWith(t, s, tok) }},
	} {
		start := time.Now()
		r := call.do()
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("%s with Redis down took %v", call.name, el)
		}
		testkit.WantStatus(t, call.name+" with Redis down", r, http.StatusServiceUnavailable, "server_error")
	}

	d.set(true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := k.ClientCredentials(t, s)
		if r.Status == http.StatusOK {
			testkit.WantStatus(t, "API call after recovery", k.APIWith(t, s, r.Str("access_token")), http.StatusOK, "")
			testkit.WantStatus(t, "API call with the old token after recovery", k.APIWith(t, s, tok), http.StatusOK, "")
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after Redis came back: %d %s", r.Status, r.Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
