package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// envURL names the variable that points the tests at a PostgreSQL database;
// CI sets it and refuses skipped tests.
const envURL = "DPOPKIT_POSTGRES_URL"

var bg = context.Background()

// databaseURL returns the test database URL, or skips the test.
func databaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(envURL)
	if u == "" {
		t.Skipf("%s is not set: set it to a PostgreSQL URL, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the PostgreSQL store tests", envURL)
	}
	return u
}

// newPool opens a pool on rawURL (the test database, or a proxy in front of
// it) and closes it when the test ends. edit may change the configuration.
func newPool(t testing.TB, rawURL string, edit func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		t.Fatalf("%s: %v", envURL, err)
	}
	cfg.MaxConns = 16
	if edit != nil {
		edit(cfg)
	}
	pool, err := pgxpool.NewWithConfig(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// testPool is a pool on the test database.
func testPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return newPool(t, databaseURL(t), nil)
}

// freshSchema migrates a new schema with a random name and drops it when the
// test ends (registered before the stores' cleanups, so it runs after them).
func freshSchema(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	schema := "dpoptest_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(bg, 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	if err := Migrate(bg, pool, schema); err != nil {
		t.Fatal(err)
	}
	return schema
}

// openStore returns a store over schema, closed when the test ends.
func openStore(t testing.TB, pool *pgxpool.Pool, schema string, edit func(*Options)) *Store {
	t.Helper()
	opts := Options{Pool: pool, Schema: schema}
	if edit != nil {
		edit(&opts)
	}
	s, err := New(bg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// suiteStores is the constructor the adaptertest suites get: each subtest
// gets a store over a fresh schema of its own, dropped when it ends.
func suiteStores(pool *pgxpool.Pool) adaptertest.NewStore {
	return func(t *testing.T) (store.Store, func()) {
		schema := freshSchema(t, pool)
		s, err := New(bg, Options{Pool: pool, Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		return s, func() { s.Close() }
	}
}

// countRows counts the rows of a table of schema.
func countRows(t testing.TB, pool *pgxpool.Pool, schema, table string) int {
	t.Helper()
	var n int
	err := pool.QueryRow(bg, "SELECT count(*) FROM "+pgx.Identifier{schema, table}.Sanitize()).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// freePort returns a loopback address nothing listens on.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// viaAddr returns rawURL with its host replaced by addr and a short connect
// timeout.
func viaAddr(t testing.TB, rawURL, addr string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	q := u.Query()
	q.Set("connect_timeout", "1")
	u.RawQuery = q.Encode()
	return u.String()
}

// proxy is a TCP proxy in front of the database that a test can cut and
// restore, to play an outage without touching the server.
type proxy struct {
	target string
	addr   string // where the proxy listens, kept across a portClosed outage

	mu    sync.Mutex
	ln    net.Listener // nil while the port is closed
	mode  proxyMode
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

type proxyMode int

const (
	forward    proxyMode = iota
	refuse               // connections are accepted and closed at once
	portClosed           // nothing listens: connections are refused
	blackhole            // bytes are swallowed and nothing answers: a partition
)

// newProxy starts a proxy to the host of rawURL and returns it with the URL
// to give the pool; it stops when the test ends.
func newProxy(t testing.TB, rawURL string) (*proxy, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: u.Host, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.wg.Go(func() { p.serve(ln) })
	t.Cleanup(p.stop)
	return p, viaAddr(t, rawURL, p.addr)
}

func (p *proxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		if mode == refuse {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		if mode == blackhole {
			p.wg.Go(func() { io.Copy(io.Discard, c); p.drop(c) })
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[up] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(up, c) })
		p.wg.Go(func() { p.pipe(c, up) })
	}
}

// pipe copies from src to dst while the proxy forwards; in blackhole mode
// it reads and drops.
func (p *proxy) pipe(dst, src net.Conn) {
	defer p.drop(dst, src)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			mode := p.mode
			p.mu.Unlock()
			if mode == forward {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// set switches the mode. In refuse and portClosed mode every connection is
// closed (and in portClosed mode the listener too); in blackhole mode they
// stay open and silent. Back in forward mode, connections left from an
// outage are closed and the port is listened on again.
func (p *proxy) set(m proxyMode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.mode
	p.mode = m
	if m == refuse || m == portClosed || (m == forward && prev != forward) {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
	if m == portClosed && p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	if m == forward && p.ln == nil {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			return err
		}
		p.ln = ln
		p.wg.Go(func() { p.serve(ln) })
	}
	return nil
}

// drop closes and forgets connections.
func (p *proxy) drop(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) stop() {
	p.set(portClosed)
	p.wg.Wait()
}

// errIsStoreSentinel reports whether err is one of the "answers" a store
// gives about a record rather than a failure.
func errIsStoreSentinel(err error, sentinels ...error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
