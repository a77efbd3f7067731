package redisstore_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/store"
	"github.com/dpopkit/dpop/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// TestConformance runs the store contract's conformance suite.
func TestConformance(t *testing.T) { adaptertest.Run(t, suiteStores(newClient(t))) }

func TestNewValidates(t *testing.T) {
	if _, err := redisstore.New(redisstore.Options{}); err == nil {
		t.Error("New accepted a missing client")
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, p := range []string{"a{b}:", "{", "x}"} {
		if _, err := redisstore.New(redisstore.Options{Client: c, Prefix: p, SkipEvictionCheck: true}); err == nil {
			t.Errorf("New accepted the prefix %q, which changes the hash tags", p)
		}
	}
	if _, err := redisstore.New(redisstore.Options{Client: c, SkipEvictionCheck: true}); err != nil {
		t.Errorf("New with the default prefix: %v", err)
	}
}

// TestClose: a closed store refuses every call, and the caller's client
// stays open.
func TestClose(t *testing.T) {
	c := newClient(t)
	s, _ := newStore(t, c)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetClient(bg, "x"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("GetClient after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Insert(bg, dpop.NewReplayKey("a", "b"), time.Minute); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Insert after Close: %v, want ErrClosed", err)
	}
	if err := c.Ping(bg).Err(); err != nil {
		t.Errorf("Close closed the caller's client: %v", err)
	}
}

// TestKeysAndTTLs checks what lands in Redis: every key under the prefix,
// no token value in any key or value, native expiries from ExpiresAt, no
// expiry on clients, and the replay entry's ttl.
func TestKeysAndTTLs(t *testing.T) {
	c := newClient(t)
	s, prefix := newStore(t, c)
	const code, access, refresh, par = "code-value-7f3a", "access-value-91bc", "refresh-value-5d2e", "urn:ietf:params:oauth:request_uri:par-4c1e"
	exp := time.Now().Add(10 * time.Minute)
	must(t, s.SaveClient(bg, &store.Client{ID: "{tag} client", Scopes: []string{"read"}}))
	must(t, s.SaveCode(bg, store.HashToken(code), &store.AuthorizationCode{GrantID: "g", ClientID: "c", ExpiresAt: exp}))
	must(t, s.SaveAccessToken(bg, store.HashToken(access), &store.AccessToken{GrantID: "g", ClientID: "c", ExpiresAt: exp}))
	must(t, s.SaveRefreshToken(bg, store.HashToken(refresh), &store.RefreshToken{GrantID: "g", ClientID: "c", ExpiresAt: exp.Add(time.Hour)}))
	must(t, s.SavePushedRequest(bg, store.HashToken(par), &store.PushedRequest{ClientID: "c", Params: "response_type=code", ExpiresAt: exp}))
	if ok, err := s.Insert(bg, dpop.NewReplayKey("jkt", "jti"), 90*time.Second+time.Microsecond); err != nil || !ok {
		t.Fatalf("Insert: %v %v", ok, err)
	}
	keys := keysUnder(t, c, prefix)
	if len(keys) != 6 {
		t.Fatalf("keys %q, want 6", keys)
	}
	for _, k := range keys {
		v, err := c.Get(bg, k).Result()
		must(t, err)
		for _, secret := range []string{code, access, refresh, par} {
			if strings.Contains(k, secret) || strings.Contains(v, secret) {
				t.Errorf("key %q or its value holds a token value", k)
			}
		}
		ttl, err := c.PTTL(bg, k).Result()
		must(t, err)
		switch {
		case strings.Contains(k, "cl:"):
			if ttl != -1 {
				t.Errorf("client key %q has a ttl %v", k, ttl)
			}
		case strings.Contains(k, "rp:"):
			// 90 s and 1 µs is rounded up to 90.001 s, never down.
			if ttl > 90001*time.Millisecond || ttl < 85*time.Second {
				t.Errorf("replay key %q ttl %v, want just under 90.001s", k, ttl)
			}
		case strings.Contains(k, "rt:"):
			if d := time.Until(exp.Add(time.Hour)) - ttl; d < -10*time.Millisecond || d > 5*time.Second {
				t.Errorf("refresh token key %q ttl %v, want about %v", k, ttl, time.Until(exp.Add(time.Hour)))
			}
		default:
			if d := time.Until(exp) - ttl; d < -10*time.Millisecond || d > 5*time.Second {
				t.Errorf("key %q ttl %v, want about %v", k, ttl, time.Until(exp))
			}
		}
	}
}

// TestSaveExpiredReplaces: saving an expired record over a live one leaves
// nothing under the key.
func TestSaveExpiredReplaces(t *testing.T) {
	c := newClient(t)
	s, prefix := newStore(t, c)
	h := store.HashToken("token")
	must(t, s.SaveAccessToken(bg, h, &store.AccessToken{ClientID: "c", ExpiresAt: time.Now().Add(time.Hour)}))
	must(t, s.SaveAccessToken(bg, h, &store.AccessToken{ClientID: "c", ExpiresAt: time.Now().Add(-time.Second)}))
	if _, err := s.GetAccessToken(bg, h); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAccessToken: %v, want ErrNotFound", err)
	}
	if keys := keysUnder(t, c, prefix); len(keys) != 0 {
		t.Fatalf("keys %q left", keys)
	}
}

// TestClockOfTheStore: expiry is judged by Options.Now, not only by Redis's
// clock, so a record is never returned past its ExpiresAt.
func TestClockOfTheStore(t *testing.T) {
	c := newClient(t)
	s, prefix := newStore(t, c)
	late, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	must(t, err)
	exp := time.Now().Add(time.Hour)
	code, at, rt, next := store.HashToken("c"), store.HashToken("a"), store.HashToken("r"), store.HashToken("n")
	must(t, s.SaveCode(bg, code, &store.AuthorizationCode{ClientID: "c", ExpiresAt: exp}))
	must(t, s.SaveAccessToken(bg, at, &store.AccessToken{ClientID: "c", ExpiresAt: exp}))
	must(t, s.SaveRefreshToken(bg, rt, &store.RefreshToken{ClientID: "c", ExpiresAt: exp}))
	if _, err := late.ConsumeCode(bg, code); !errors.Is(err, store.ErrExpired) {
		t.Errorf("ConsumeCode: %v, want ErrExpired", err)
	}
	if _, err := late.GetAccessToken(bg, at); !errors.Is(err, store.ErrExpired) {
		t.Errorf("GetAccessToken: %v, want ErrExpired", err)
	}
	if _, err := late.RotateRefreshToken(bg, rt, next, &store.RefreshToken{ClientID: "c", ExpiresAt: exp.Add(5 * time.Hour)}); !errors.Is(err, store.ErrExpired) {
		t.Errorf("RotateRefreshToken: %v, want ErrExpired", err)
	}
	if _, err := s.GetRefreshToken(bg, next); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused rotation stored its token: %v", err)
	}
	// The late clock consumed nothing.
	if _, err := s.ConsumeCode(bg, code); err != nil {
		t.Errorf("ConsumeCode on time: %v", err)
	}
}

// TestRevokeGrantNeverShortens: a second, shorter revocation keeps the
// first one's end; one that has already ended records nothing.
func TestRevokeGrantNeverShortens(t *testing.T) {
	c := newClient(t)
	s, prefix := newStore(t, c)
	must(t, s.RevokeGrant(bg, "ended", time.Now().Add(-time.Minute)))
	if keys := keysUnder(t, c, prefix); len(keys) != 0 {
		t.Fatalf("a revocation that has ended left keys %q", keys)
	}
	must(t, s.RevokeGrant(bg, "g", time.Now().Add(2*time.Hour)))
	must(t, s.RevokeGrant(bg, "g", time.Now().Add(time.Minute)))
	keys := keysUnder(t, c, prefix)
	if len(keys) != 17 {
		t.Fatalf("%d revocation keys, want one per access group (16) and one for refresh tokens", len(keys))
	}
	for _, k := range keys {
		ttl, err := c.PTTL(bg, k).Result()
		must(t, err)
		if ttl < 119*time.Minute {
			t.Errorf("revocation %q shortened to %v", k, ttl)
		}
	}
}

// TestScriptCacheFlushed: after SCRIPT FLUSH (or a restart of Redis) the
// scripts are sent again in full.
func TestScriptCacheFlushed(t *testing.T) {
	c := newClient(t)
	s, _ := newStore(t, c)
	exp := time.Now().Add(time.Hour)
	code, at, rt := store.HashToken("c"), store.HashToken("a"), store.HashToken("r")
	must(t, s.SaveCode(bg, code, &store.AuthorizationCode{ClientID: "c", ExpiresAt: exp}))
	must(t, s.SaveAccessToken(bg, at, &store.AccessToken{GrantID: "g", ClientID: "c", ExpiresAt: exp}))
	must(t, s.SaveRefreshToken(bg, rt, &store.RefreshToken{GrantID: "g", ClientID: "c", ExpiresAt: exp}))
	_, err := s.GetAccessToken(bg, at)
	must(t, err)
	must(t, c.ScriptFlush(bg).Err())
	_, err = s.ConsumeCode(bg, code)
	must(t, err)
	_, err = s.RotateRefreshToken(bg, rt, store.HashToken("r2"), &store.RefreshToken{GrantID: "g", ClientID: "c", ExpiresAt: exp})
	must(t, err)
	must(t, c.ScriptFlush(bg).Err())
	must(t, s.RevokeGrant(bg, "g", exp))
	if _, err := s.GetAccessToken(bg, at); !errors.Is(err, store.ErrRevoked) {
		t.Fatalf("GetAccessToken after RevokeGrant: %v, want ErrRevoked", err)
	}
}

// TestCancelledMidCall: a deadline that expires while Redis is silent ends
// the call with an error wrapping context.DeadlineExceeded.
func TestCancelledMidCall(t *testing.T) {
	addr := silentServer(t)
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1, DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
	defer c.Close()
	s, err := redisstore.New(redisstore.Options{Client: c, SkipEvictionCheck: true})
	must(t, err)
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.GetAccessToken(ctx, store.HashToken("x"))
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAccessToken past its deadline: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("GetAccessToken took %v past a 100ms deadline", d)
	}
}

// TestUnreachable: with Redis away (a closed port, or a server that accepts
// connections and never answers), every method fails within a bounded time
// with an error that is not ErrNotFound, so the kit answers 503 and never
// treats an outage as "no such token".
func TestUnreachable(t *testing.T) {
	for _, tc := range []struct{ name, addr string }{
		{"closed port", "127.0.0.1:1"},
		{"silent server", silentServer(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := redis.NewClient(&redis.Options{
				Addr: tc.addr, DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond,
				WriteTimeout: 200 * time.Millisecond, MaxRetries: 1, DialerRetries: 1, ContextTimeoutEnabled: true,
			})
			defer c.Close()
			s, err := redisstore.New(redisstore.Options{Client: c, SkipEvictionCheck: true})
			must(t, err)
			h, exp := store.HashToken("x"), time.Now().Add(time.Hour)
			calls := map[string]func() error{
				"GetClient":       func() error { _, err := s.GetClient(bg, "demo"); return err },
				"SaveClient":      func() error { return s.SaveClient(bg, &store.Client{ID: "demo"}) },
				"SaveCode":        func() error { return s.SaveCode(bg, h, &store.AuthorizationCode{ExpiresAt: exp}) },
				"GetCode":         func() error { _, err := s.GetCode(bg, h); return err },
				"ConsumeCode":     func() error { _, err := s.ConsumeCode(bg, h); return err },
				"SaveAccessToken": func() error { return s.SaveAccessToken(bg, h, &store.AccessToken{ExpiresAt: exp}) },
				"GetAccessToken":  func() error { _, err := s.GetAccessToken(bg, h); return err },
				"RevokeAccessToken": func() error {
					return s.RevokeAccessToken(bg, h)
				},
				"SaveRefreshToken": func() error { return s.SaveRefreshToken(bg, h, &store.RefreshToken{ExpiresAt: exp}) },
				"GetRefreshToken":  func() error { _, err := s.GetRefreshToken(bg, h); return err },
				"RotateRefreshToken": func() error {
					_, err := s.RotateRefreshToken(bg, h, store.HashToken("y"), &store.RefreshToken{ExpiresAt: exp})
					return err
				},
				"RevokeRefreshToken": func() error { return s.RevokeRefreshToken(bg, h) },
				"RevokeGrant":        func() error { return s.RevokeGrant(bg, "g", exp) },
				"Insert": func() error {
					ok, err := s.Insert(bg, dpop.NewReplayKey("jkt", "jti"), time.Minute)
					if ok {
						t.Error("Insert reported an insertion")
					}
					return err
				},
			}
			for name, call := range calls {
				start := time.Now()
				err := call()
				d := time.Since(start)
				switch {
				case err == nil:
					t.Errorf("%s succeeded without Redis", name)
				case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConsumed), errors.Is(err, store.ErrRevoked):
					t.Errorf("%s turned an outage into %v", name, err)
				case !strings.HasPrefix(err.Error(), "redisstore: "):
					t.Errorf("%s error not wrapped: %v", name, err)
				}
				if d > 3*time.Second {
					t.Errorf("%s took %v", name, d)
				}
			}
		})
	}
}

// silentServer listens on loopback, accepts connections and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { close(done); l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				<-done
				conn.Close()
			}()
		}
	}()
	return l.Addr().String()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
