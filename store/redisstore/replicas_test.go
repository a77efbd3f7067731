package redisstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
	"github.com/dpopkit/dpop/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// TestReplicasFailClosed: the test server has no replica, so with
// Options.Replicas every write a failover must not lose fails with
// ErrNotReplicated within about ReplicaTimeout, and none reports success;
// reads and the other writes work as before. (TestFailover, on a private
// cluster, shows the acknowledged writes surviving a failover.)
func TestReplicasFailClosed(t *testing.T) {
	c := newClient(t)
	prefix := cleanPrefix(t, c)
	const timeout = 20 * time.Millisecond
	s, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix, Replicas: 1, ReplicaTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := redisstore.New(redisstore.Options{Client: c, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	h := func(b byte) store.TokenHash { return store.TokenHash{b, 1, 2, 3} }
	// Records the durable writes act on, saved without waiting.
	must(t, s.SaveCode(ctx, h(1), &store.AuthorizationCode{ClientID: "c", ExpiresAt: exp}))
	must(t, s.SaveRefreshToken(ctx, h(2), &store.RefreshToken{ClientID: "c", GrantID: "g", ExpiresAt: exp}))
	must(t, s.SaveAccessToken(ctx, h(3), &store.AccessToken{ClientID: "c", ExpiresAt: exp}))
	must(t, s.SavePushedRequest(ctx, h(4), &store.PushedRequest{ClientID: "c", ExpiresAt: exp}))
	must(t, s.SaveAccessToken(ctx, h(6), &store.AccessToken{ClientID: "c", JKT: "jkt", ExpiresAt: exp}))
	key := dpop.NewReplayKey("jkt", "jti")

	for _, tc := range []struct {
		name string
		call func() (succeeded bool, err error)
	}{
		{"Insert", func() (bool, error) { return s.Insert(ctx, key, time.Minute) }},
		{"ConsumeCode", func() (bool, error) { r, err := s.ConsumeCode(ctx, h(1)); return r != nil && err == nil, err }},
		{"ConsumePushedRequest", func() (bool, error) {
			r, err := s.ConsumePushedRequest(ctx, h(4))
			return r != nil && err == nil, err
		}},
		{"RotateRefreshToken", func() (bool, error) {
			r, err := s.RotateRefreshToken(ctx, h(2), h(5), &store.RefreshToken{ClientID: "c", GrantID: "g", ExpiresAt: exp})
			return r != nil && err == nil, err
		}},
		{"RevokeAccessToken", func() (bool, error) { err := s.RevokeAccessToken(ctx, h(3)); return err == nil, err }},
		{"RevokeRefreshToken", func() (bool, error) { err := s.RevokeRefreshToken(ctx, h(2)); return err == nil, err }},
		{"RevokeGrant", func() (bool, error) { err := s.RevokeGrant(ctx, "g", exp); return err == nil, err }},
		{"UseAccessToken", func() (bool, error) {
			_, ok, err := s.UseAccessToken(ctx, h(6), "jkt", dpop.NewReplayKey("jkt", "used"), time.Minute)
			return ok, err
		}},
	} {
		start := time.Now()
		ok, err := tc.call()
		took := time.Since(start)
		if ok || !errors.Is(err, redisstore.ErrNotReplicated) {
			t.Errorf("%s without a replica = %v, %v; want a failure with ErrNotReplicated", tc.name, ok, err)
		}
		if took > timeout+time.Second {
			t.Errorf("%s took %v; ReplicaTimeout is %v", tc.name, took, timeout)
		}
	}
	// The writes reached the master and stay in force there: the proof is
	// a replay, the code and request consumed. Failing closed never
	// undoes a consumption.
	if ok, err := plain.Insert(ctx, key, time.Minute); ok || err != nil {
		t.Errorf("replay after a refused acknowledgement = %v, %v; want false", ok, err)
	}
	if _, err := plain.ConsumeCode(ctx, h(1)); !errors.Is(err, store.ErrConsumed) {
		t.Errorf("code after a refused acknowledgement: %v; want ErrConsumed", err)
	}
	// Reads and saves do not wait.
	if _, err := s.GetCode(ctx, h(1)); !errors.Is(err, store.ErrConsumed) {
		t.Errorf("GetCode = %v; want ErrConsumed", err)
	}
	if _, err := s.GetClient(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetClient = %v; want ErrNotFound", err)
	}
}

// TestReplicasOptions: New refuses a negative count or timeout, and a
// client it cannot send WAIT through (a Ring spreads keys over servers of
// its own choosing).
func TestReplicasOptions(t *testing.T) {
	c := newClient(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": c.Options().Addr}})
	t.Cleanup(func() { ring.Close() })
	for _, tc := range []struct {
		opts redisstore.Options
		want string
	}{
		{redisstore.Options{Client: c, Replicas: -1}, "Replicas"},
		{redisstore.Options{Client: c, Replicas: 1, ReplicaTimeout: -time.Second}, "ReplicaTimeout"},
		{redisstore.Options{Client: ring, Replicas: 1}, "*redis.Ring"},
	} {
		if _, err := redisstore.New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v; want an error naming %s", tc.opts, err, tc.want)
		}
	}
	rs, err := redisstore.New(redisstore.Options{Client: ring, SkipEvictionCheck: true, Prefix: freshPrefix()})
	if err != nil {
		t.Fatalf("a Ring without Replicas: %v", err)
	}
	// Over a Ring the one-call methods make their two calls, whose keys
	// the Ring may place on different servers.
	ctx, h, k := context.Background(), store.TokenHash{9}, dpop.NewReplayKey("jkt", "ring")
	tok := &store.AccessToken{ClientID: "c", JKT: "jkt", ExpiresAt: time.Now().Add(time.Minute)}
	if ok, err := rs.InsertAndSaveAccessToken(ctx, k, time.Minute, h, tok); !ok || err != nil {
		t.Fatalf("InsertAndSaveAccessToken over a Ring = %v, %v", ok, err)
	}
	if _, ok, err := rs.UseAccessToken(ctx, h, "jkt", dpop.NewReplayKey("jkt", "ring-use"), time.Minute); !ok || err != nil {
		t.Fatalf("UseAccessToken over a Ring = %v, %v", ok, err)
	}
	if _, ok, err := rs.UseAccessToken(ctx, h, "jkt", k, time.Minute); ok || err != nil {
		t.Fatalf("UseAccessToken over a Ring with the token request's proof = %v, %v; want a replay", ok, err)
	}
}
