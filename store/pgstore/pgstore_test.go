package pgstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestConformance runs the store conformance suite.
func TestConformance(t *testing.T) { adaptertest.Run(t, suiteStores(testPool(t))) }

func TestMigrate(t *testing.T) {
	pool := testPool(t)
	t.Run("Twice", func(t *testing.T) {
		schema := freshSchema(t, pool) // the first run
		if err := Migrate(bg, pool, schema); err != nil {
			t.Fatalf("second Migrate: %v", err)
		}
		roundTrip(t, openStore(t, pool, schema, nil))
	})
	t.Run("Concurrent", func(t *testing.T) {
		// Four instances starting at once, on a schema that does not exist
		// yet, then again on the one they made.
		schema := freshSchema(t, pool)
		if _, err := pool.Exec(bg, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Fatal(err)
		}
		for round := range 2 {
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for i := range errs {
				wg.Go(func() { errs[i] = Migrate(bg, pool, schema) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("round %d, Migrate %d: %v", round, i, err)
				}
			}
		}
		roundTrip(t, openStore(t, pool, schema, nil))
	})
	t.Run("Identifiers", func(t *testing.T) {
		for _, bad := range []string{"Dpop", "dpop-x", "1dpop", `dpop"; DROP TABLE x; --`, "dpop.x", "dpöp", strings.Repeat("x", 64)} {
			if err := Migrate(bg, pool, bad); err == nil || !strings.Contains(err.Error(), "identifier") {
				t.Errorf("Migrate(%q): %v, want an identifier error", bad, err)
			}
			if _, err := New(bg, Options{Pool: pool, Schema: bad}); err == nil {
				t.Errorf("New with schema %q succeeded", bad)
			}
		}
	})
	t.Run("NewNeedsMigrate", func(t *testing.T) {
		_, err := New(bg, Options{Pool: pool, Schema: "dpoptest_never_migrated"})
		if err == nil || !strings.Contains(err.Error(), "run Migrate") {
			t.Fatalf("New over a missing schema: %v, want an error naming Migrate", err)
		}
		if _, err := New(bg, Options{}); err == nil {
			t.Fatal("New without a pool succeeded")
		}
		if _, err := New(bg, Options{Pool: pool, Schema: freshSchema(t, pool), CleanupBatch: -1}); err == nil {
			t.Fatal("New with a negative CleanupBatch succeeded")
		}
	})
	t.Run("CancelledContext", func(t *testing.T) {
		ctx, cancel := context.WithCancel(bg)
		cancel()
		if err := Migrate(ctx, pool, "dpoptest_cancelled"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Migrate with a cancelled context: %v", err)
		}
	})
}

// roundTrip checks that a store answers.
func roundTrip(t *testing.T, s *Store) {
	t.Helper()
	h := store.HashToken(t.Name())
	exp := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	if err := s.SaveAccessToken(bg, h, &store.AccessToken{GrantID: "g", Subject: "alice", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAccessToken(bg, h)
	if err != nil || got.Subject != "alice" || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("GetAccessToken: %+v, %v", got, err)
	}
}

// TestTwoInstances races consumers, rotations and replay inserts on two
// stores with separate pools over one schema: two processes, one database.
func TestTwoInstances(t *testing.T) {
	rawURL := databaseURL(t)
	schema := freshSchema(t, testPool(t))
	stores := []*Store{
		openStore(t, newPool(t, rawURL, nil), schema, nil),
		openStore(t, newPool(t, rawURL, nil), schema, nil),
	}
	exp := time.Now().Add(time.Hour)
	code, rt := store.HashToken("code"), store.HashToken("rt")
	if err := stores[0].SaveCode(bg, code, &store.AuthorizationCode{GrantID: "g1", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if err := stores[1].SaveRefreshToken(bg, rt, &store.RefreshToken{GrantID: "g2", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	const n = 32
	var codes, rotations, inserts atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 3*n)
	key := dpop.NewReplayKey("jkt", "jti")
	for i := range n {
		s := stores[i%2]
		wg.Go(func() {
			<-start
			if _, err := s.ConsumeCode(bg, code); err == nil {
				codes.Add(1)
			} else if !errors.Is(err, store.ErrConsumed) {
				errs <- err
			}
			next := store.HashToken(fmt.Sprint("next", i))
			if _, err := s.RotateRefreshToken(bg, rt, next, &store.RefreshToken{GrantID: "g2", ExpiresAt: exp}); err == nil {
				rotations.Add(1)
			} else if !errors.Is(err, store.ErrConsumed) {
				errs <- err
			}
			if ok, err := s.Insert(bg, key, time.Minute); err != nil {
				errs <- err
			} else if ok {
				inserts.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	if codes.Load() != 1 || rotations.Load() != 1 || inserts.Load() != 1 {
		t.Fatalf("winners: %d consumes, %d rotations, %d replay inserts; want 1 each", codes.Load(), rotations.Load(), inserts.Load())
	}
	if got := countRows(t, stores[0].pool, schema, "refresh_tokens"); got != 2 {
		t.Fatalf("%d refresh tokens after the race, want the old and one new", got)
	}
}

// TestCleanup checks that the background cleanup deletes expired rows of
// every table in bounded batches, leaves live ones, and stops on Close.
func TestCleanup(t *testing.T) {
	pool := testPool(t)
	schema := freshSchema(t, pool)
	s := openStore(t, pool, schema, func(o *Options) { o.CleanupInterval = 20 * time.Millisecond; o.CleanupBatch = 2 })
	// A second instance, whose clock is an hour behind, writes the expired
	// rows (its replay entries have expired for s too).
	past := openStore(t, pool, schema, func(o *Options) {
		o.CleanupInterval = -1
		o.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	})
	live, dead := time.Now().Add(time.Hour), time.Now().Add(-time.Minute)
	seed := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			h := store.HashToken(fmt.Sprint(prefix, i))
			must(t, past.SaveCode(bg, h, &store.AuthorizationCode{GrantID: "g", ExpiresAt: dead}))
			must(t, past.SavePushedRequest(bg, h, &store.PushedRequest{ClientID: "c", ExpiresAt: dead}))
			must(t, past.SaveAccessToken(bg, h, &store.AccessToken{GrantID: "g", ExpiresAt: dead}))
			must(t, past.SaveRefreshToken(bg, h, &store.RefreshToken{GrantID: "g", ExpiresAt: dead}))
			must(t, past.RevokeGrant(bg, fmt.Sprint(prefix, i), dead))
			ok, err := past.Insert(bg, dpop.ReplayKey(h), time.Minute)
			must(t, err)
			if !ok {
				t.Fatal("replay entry refused")
			}
		}
	}
	keep := store.HashToken("live")
	must(t, s.SaveCode(bg, keep, &store.AuthorizationCode{GrantID: "g", ExpiresAt: live}))
	must(t, s.SavePushedRequest(bg, keep, &store.PushedRequest{ClientID: "c", ExpiresAt: live}))
	must(t, s.SaveAccessToken(bg, keep, &store.AccessToken{GrantID: "g", ExpiresAt: live}))
	must(t, s.SaveRefreshToken(bg, keep, &store.RefreshToken{GrantID: "g", ExpiresAt: live}))
	must(t, s.RevokeGrant(bg, "live", live))
	if ok, err := s.Insert(bg, dpop.NewReplayKey("jkt", "live"), time.Hour); err != nil || !ok {
		t.Fatalf("Insert: %v %v", ok, err)
	}
	seed("a", 5) // 5 rows per table, 3 batches of 2
	for _, table := range tables[1:] {
		waitFor(t, 5*time.Second, func() bool { return countRows(t, pool, schema, table) == 1 },
			"expired rows of "+table+" deleted")
	}
	if _, err := s.GetAccessToken(bg, keep); err != nil {
		t.Fatalf("a live token did not survive the cleanup: %v", err)
	}

	s.Close()
	after := s.runs.Load()
	if after == 0 {
		t.Fatal("no cleanup run was counted")
	}
	seed("b", 3)
	time.Sleep(200 * time.Millisecond) // 10 intervals
	if got := s.runs.Load(); got != after {
		t.Fatalf("the cleanup ran %d times after Close", got-after)
	}
	for _, table := range tables[1:] {
		if got := countRows(t, pool, schema, table); got != 4 {
			t.Fatalf("%s has %d rows after Close, want 4: something still deletes", table, got)
		}
	}
	// Run by hand (the way to clean when the loop is disabled).
	n, err := past.DeleteExpired(bg)
	must(t, err)
	if n != 0 {
		t.Fatalf("DeleteExpired with a clock an hour behind deleted %d rows", n)
	}
	now := openStore(t, pool, schema, func(o *Options) { o.CleanupInterval = -1; o.CleanupBatch = 2 })
	n, err = now.DeleteExpired(bg)
	if want := int64(len(tables)-1) * 3; err != nil || n != want {
		t.Fatalf("DeleteExpired: %d rows, %v; want %d", n, err, want)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitFor(t testing.TB, limit time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClock checks that the injected clock decides expiry.
func TestClock(t *testing.T) {
	pool := testPool(t)
	schema := freshSchema(t, pool)
	var offset atomic.Int64
	s := openStore(t, pool, schema, func(o *Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	})
	h := store.HashToken("t")
	must(t, s.SaveAccessToken(bg, h, &store.AccessToken{GrantID: "g", ExpiresAt: time.Now().Add(time.Minute)}))
	must(t, s.RevokeGrant(bg, "g", time.Now().Add(2*time.Minute)))
	if _, err := s.GetAccessToken(bg, h); !errors.Is(err, store.ErrRevoked) {
		t.Fatalf("GetAccessToken: %v, want ErrRevoked", err)
	}
	offset.Store(int64(90 * time.Second))
	if _, err := s.GetAccessToken(bg, h); !errors.Is(err, store.ErrExpired) {
		t.Fatalf("GetAccessToken 90s later: %v, want ErrExpired", err)
	}
	k := dpop.NewReplayKey("jkt", "clock")
	if ok, err := s.Insert(bg, k, time.Minute); err != nil || !ok {
		t.Fatalf("Insert: %v %v", ok, err)
	}
	offset.Store(int64(200 * time.Second))
	if ok, err := s.Insert(bg, k, time.Minute); err != nil || !ok {
		t.Fatalf("Insert after the entry expired on the injected clock: %v %v", ok, err)
	}
	if ok, err := s.Insert(bg, k, time.Minute); err != nil || ok {
		t.Fatalf("Insert of the renewed entry: %v %v, want a replay", ok, err)
	}
	if _, err := s.Insert(bg, k, 0); err == nil {
		t.Fatal("Insert with a zero ttl succeeded")
	}
}

// TestText checks strings PostgreSQL text cannot hold.
func TestText(t *testing.T) {
	pool := testPool(t)
	s := openStore(t, pool, freshSchema(t, pool), nil)
	for _, bad := range []string{"a\x00b", "\xff\xfe", "\xc3("} {
		if _, err := s.GetClient(bg, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetClient(%q): %v, want ErrNotFound", bad, err)
		}
		if err := s.SaveClient(bg, &store.Client{ID: bad}); !errors.Is(err, ErrInvalidText) {
			t.Errorf("SaveClient(%q): %v", bad, err)
		}
		if err := s.SaveClient(bg, &store.Client{ID: "ok", Scopes: []string{bad}}); !errors.Is(err, ErrInvalidText) {
			t.Errorf("SaveClient with scope %q: %v", bad, err)
		}
		h := store.HashToken(bad)
		if err := s.SaveCode(bg, h, &store.AuthorizationCode{Subject: bad}); !errors.Is(err, ErrInvalidText) {
			t.Errorf("SaveCode: %v", err)
		}
		if err := s.SaveAccessToken(bg, h, &store.AccessToken{Scope: bad}); !errors.Is(err, ErrInvalidText) {
			t.Errorf("SaveAccessToken: %v", err)
		}
		if err := s.SaveRefreshToken(bg, h, &store.RefreshToken{JKT: bad}); !errors.Is(err, ErrInvalidText) {
			t.Errorf("SaveRefreshToken: %v", err)
		}
		if err := s.RevokeGrant(bg, bad, time.Now()); !errors.Is(err, ErrInvalidText) {
			t.Errorf("RevokeGrant: %v", err)
		}
		// The lists of resources and audiences, text[] like the scopes.
		if err := s.SaveCode(bg, h, &store.AuthorizationCode{Resources: []string{"urn:ok", bad}}); !errors.Is(err, ErrInvalidText) {
			t.Errorf("SaveCode with resource %q: %v", bad, err)
		}
		if err := s.SaveAccessToken(bg, h, &store.AccessToken{Audience: []string{bad}}); !errors.Is(err, ErrInvalidText) {
			t.Errorf("SaveAccessToken with audience %q: %v", bad, err)
		}
		if err := s.SaveRefreshToken(bg, h, &store.RefreshToken{Audience: []string{bad}}); !errors.Is(err, ErrInvalidText) {
			t.Errorf("SaveRefreshToken with audience %q: %v", bad, err)
		}
		if _, err := s.RotateRefreshToken(bg, h, store.HashToken("next"), &store.RefreshToken{Audience: []string{bad}}); !errors.Is(err, ErrInvalidText) {
			t.Errorf("RotateRefreshToken into audience %q: %v", bad, err)
		}
		// Every string of a pushed request.
		for i, r := range []*store.PushedRequest{{ClientID: bad}, {ClientID: "c", Params: "a=" + bad}, {ClientID: "c", DPoPJKT: bad}} {
			r.ExpiresAt = time.Now().Add(time.Hour)
			if err := s.SavePushedRequest(bg, h, r); !errors.Is(err, ErrInvalidText) {
				t.Errorf("SavePushedRequest %d with %q: %v", i, bad, err)
			}
			if _, err := s.GetPushedRequest(bg, h); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a refused pushed request was saved: %v", err)
			}
		}
		// A jwks_uri is refused by Client.Validate or by the text check.
		err := s.SaveClient(bg, &store.Client{ID: "ok", JWKSURI: "https://app.example/" + bad})
		if !errors.Is(err, ErrInvalidText) && !errors.Is(err, store.ErrInvalidClientMetadata) {
			t.Errorf("SaveClient with jwks_uri %q: %v", bad, err)
		}
	}
	// A client's JWK Set is bytea: its bytes come back exactly.
	jwks := []byte(`{ "keys" : [{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow","x":"é"}] }`)
	must(t, s.SaveClient(bg, &store.Client{ID: "keys", JWKS: jwks}))
	if c, err := s.GetClient(bg, "keys"); err != nil || !bytes.Equal(c.JWKS, jwks) || c.JWKSURI != "" || c.SecretHash != nil {
		t.Errorf("client with a JWK Set read back as %+v, %v", c, err)
	}
	// A registered resource of invalid UTF-8 never reaches the database:
	// Client.Validate wants ASCII (RFC 3986 §2).
	if err := s.SaveClient(bg, &store.Client{ID: "ok", Resources: []string{"https://rs.example/\xff"}}); !errors.Is(err, store.ErrInvalidResource) {
		t.Errorf("SaveClient with a resource of invalid UTF-8: %v", err)
	}
	// Claims are bytea: any bytes are kept as they are, NUL and invalid
	// UTF-8 included (the store never parses them).
	odd := []byte("{\"k\":\"\x00\xff\"}")
	exp := time.Now().Add(time.Hour)
	ha, hr := store.HashToken("claims a"), store.HashToken("claims r")
	must(t, s.SaveAccessToken(bg, ha, &store.AccessToken{Claims: odd, ExpiresAt: exp}))
	must(t, s.SaveRefreshToken(bg, hr, &store.RefreshToken{Claims: odd, ExpiresAt: exp}))
	at, err := s.GetAccessToken(bg, ha)
	must(t, err)
	rt, err := s.GetRefreshToken(bg, hr)
	must(t, err)
	if !bytes.Equal(at.Claims, odd) || !bytes.Equal(rt.Claims, odd) {
		t.Errorf("claims %q read back as %q and %q", odd, at.Claims, rt.Claims)
	}
	if err := s.SaveClient(bg, &store.Client{}); err == nil {
		t.Error("SaveClient without an id succeeded")
	}
	h := store.HashToken("x")
	if _, err := s.RotateRefreshToken(bg, h, h, &store.RefreshToken{}); err == nil {
		t.Error("rotating a token into itself succeeded")
	}
}

// TestClosed checks that a closed store refuses every call and leaves the
// caller's pool open.
func TestClosed(t *testing.T) {
	pool := testPool(t)
	s := openStore(t, pool, freshSchema(t, pool), nil)
	must(t, s.Close())
	must(t, s.Close())
	for name, c := range calls(bg, s) {
		if !errors.Is(c.err, store.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, c.err)
		}
	}
	if err := pool.Ping(bg); err != nil {
		t.Fatalf("the pool was closed with the store: %v", err)
	}
}

// call is the outcome of one method call.
type call struct {
	err  error
	took time.Duration
}

// calls runs every method of s once and returns their outcomes.
func calls(ctx context.Context, s *Store) map[string]call {
	h, exp := store.HashToken("fault"), time.Now().Add(time.Hour)
	out := map[string]call{}
	run := func(name string, f func() error) {
		start := time.Now()
		err := f()
		out[name] = call{err, time.Since(start)}
	}
	run("GetClient", func() error { _, err := s.GetClient(ctx, "demo"); return err })
	run("SaveClient", func() error { return s.SaveClient(ctx, &store.Client{ID: "demo"}) })
	run("SaveCode", func() error { return s.SaveCode(ctx, h, &store.AuthorizationCode{ExpiresAt: exp}) })
	run("GetCode", func() error { _, err := s.GetCode(ctx, h); return err })
	run("ConsumeCode", func() error { _, err := s.ConsumeCode(ctx, h); return err })
	run("SavePushedRequest", func() error { return s.SavePushedRequest(ctx, h, &store.PushedRequest{ExpiresAt: exp}) })
	run("GetPushedRequest", func() error { _, err := s.GetPushedRequest(ctx, h); return err })
	run("ConsumePushedRequest", func() error { _, err := s.ConsumePushedRequest(ctx, h); return err })
	run("SaveAccessToken", func() error { return s.SaveAccessToken(ctx, h, &store.AccessToken{ExpiresAt: exp}) })
	run("GetAccessToken", func() error { _, err := s.GetAccessToken(ctx, h); return err })
	run("RevokeAccessToken", func() error { return s.RevokeAccessToken(ctx, h) })
	run("SaveRefreshToken", func() error { return s.SaveRefreshToken(ctx, h, &store.RefreshToken{ExpiresAt: exp}) })
	run("GetRefreshToken", func() error { _, err := s.GetRefreshToken(ctx, h); return err })
	run("RotateRefreshToken", func() error {
		_, err := s.RotateRefreshToken(ctx, h, store.HashToken("next"), &store.RefreshToken{ExpiresAt: exp})
		return err
	})
	run("RevokeRefreshToken", func() error { return s.RevokeRefreshToken(ctx, h) })
	run("RevokeGrant", func() error { return s.RevokeGrant(ctx, "g", exp) })
	run("Insert", func() error { _, err := s.Insert(ctx, dpop.NewReplayKey("jkt", "fault"), time.Minute); return err })
	run("DeleteExpired", func() error { _, err := s.DeleteExpired(ctx); return err })
	return out
}

// answers are the errors that describe a record: a failure must be none of
// them, or the kit would take an outage for an unknown or spent token.
var answers = []error{store.ErrNotFound, store.ErrExpired, store.ErrConsumed, store.ErrRevoked, store.ErrClosed}

// TestUnreachable plays database outages: a closed port, a server that
// stops (connections refused) and a partition (nothing answers). Every call
// fails within a bounded time with an error that is not a store answer, and
// the same store works again once the database is back.
func TestUnreachable(t *testing.T) {
	rawURL := databaseURL(t)
	t.Run("NewOverClosedPort", func(t *testing.T) {
		pool := newPool(t, viaAddr(t, rawURL, freePort(t)), nil)
		start := time.Now()
		_, err := New(bg, Options{Pool: pool, Schema: "dpop"})
		if err == nil || errIsStoreSentinel(err, answers...) {
			t.Fatalf("New over a closed port: %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("New over a closed port took %v", d)
		}
	})

	schema := freshSchema(t, testPool(t))
	p, proxied := newProxy(t, rawURL)
	pool := newPool(t, proxied, nil)
	const timeout = 300 * time.Millisecond
	s := openStore(t, pool, schema, func(o *Options) { o.QueryTimeout = timeout; o.CleanupInterval = -1 })
	roundTrip(t, s)

	for _, tc := range []struct {
		name   string
		mode   proxyMode
		bound  time.Duration
		passes int
	}{
		// Twice: the first pass meets the pooled connections the outage
		// broke, the second has to dial.
		{"ClosedPort", portClosed, 3 * time.Second, 2},
		{"Refused", refuse, 3 * time.Second, 2},
		{"Partition", blackhole, timeout + time.Second, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, p.set(tc.mode))
			for range tc.passes {
				for name, c := range calls(bg, s) {
					if c.err == nil || errIsStoreSentinel(c.err, answers...) {
						t.Errorf("%s with the database unreachable: %v", name, c.err)
					}
					if tc.mode == blackhole && !errors.Is(c.err, context.DeadlineExceeded) {
						t.Errorf("%s in a partition: %v, want the QueryTimeout deadline", name, c.err)
					}
					if c.took > tc.bound {
						t.Errorf("%s took %v with the database unreachable, more than %v", name, c.took, tc.bound)
					}
				}
			}
			must(t, p.set(forward))
			waitFor(t, 5*time.Second, func() bool {
				_, err := s.GetAccessToken(bg, store.HashToken("TestUnreachable"))
				return err == nil || errors.Is(err, store.ErrNotFound)
			}, "the store answers again")
			roundTrip(t, s)
		})
	}
}

// TestLeastPrivilege runs the store as a role that may only use the tables
// Migrate created (USAGE on the schema; SELECT, INSERT, UPDATE, DELETE on
// the tables), as the package documentation promises.
func TestLeastPrivilege(t *testing.T) {
	rawURL := databaseURL(t)
	admin := testPool(t)
	var may bool
	must(t, admin.QueryRow(bg, "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user").Scan(&may))
	if !may {
		t.Skipf("the role of %s cannot create roles", envURL)
	}
	schema := freshSchema(t, admin)
	var b [8]byte
	rand.Read(b[:])
	role, password := "dpoptest_role_"+hex.EncodeToString(b[:4]), hex.EncodeToString(b[4:])
	q := pgx.Identifier{schema}.Sanitize()
	must(t, exec(admin, "CREATE ROLE "+role+" LOGIN PASSWORD '"+password+"'"))
	t.Cleanup(func() {
		exec(admin, "REVOKE ALL ON ALL TABLES IN SCHEMA "+q+" FROM "+role)
		exec(admin, "REVOKE ALL ON SCHEMA "+q+" FROM "+role)
		if err := exec(admin, "DROP ROLE "+role); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	must(t, exec(admin, "GRANT USAGE ON SCHEMA "+q+" TO "+role))
	must(t, exec(admin, "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+q+" TO "+role))

	u, err := url.Parse(rawURL)
	must(t, err)
	u.User = url.UserPassword(role, password)
	pool := newPool(t, u.String(), nil)
	s := openStore(t, pool, schema, func(o *Options) { o.CleanupInterval = -1 })
	if err := Migrate(bg, pool, schema); err == nil {
		t.Fatal("the restricted role could run Migrate")
	}
	exp := time.Now().Add(time.Hour)
	h, next := store.HashToken("c"), store.HashToken("n")
	must(t, s.SaveClient(bg, &store.Client{ID: "c"}))
	_, err = s.GetClient(bg, "c")
	must(t, err)
	must(t, s.SaveCode(bg, h, &store.AuthorizationCode{GrantID: "g", ExpiresAt: exp}))
	_, err = s.ConsumeCode(bg, h)
	must(t, err)
	must(t, s.SaveRefreshToken(bg, h, &store.RefreshToken{GrantID: "g", ExpiresAt: exp}))
	_, err = s.RotateRefreshToken(bg, h, next, &store.RefreshToken{GrantID: "g", ExpiresAt: exp})
	must(t, err)
	must(t, s.RevokeGrant(bg, "g", exp))
	_, err = s.GetRefreshToken(bg, next)
	if !errors.Is(err, store.ErrRevoked) {
		t.Fatalf("GetRefreshToken: %v", err)
	}
	ok, err := s.Insert(bg, dpop.NewReplayKey("jkt", "jti"), time.Minute)
	if err != nil || !ok {
		t.Fatalf("Insert: %v %v", ok, err)
	}
	must(t, s.SaveAccessToken(bg, h, &store.AccessToken{GrantID: "g", ExpiresAt: time.Now().Add(-time.Second)}))
	if n, err := s.DeleteExpired(bg); err != nil || n != 1 {
		t.Fatalf("DeleteExpired: %d, %v", n, err)
	}
}

func exec(pool *pgxpool.Pool, sql string) error {
	_, err := pool.Exec(bg, sql)
	return err
}
