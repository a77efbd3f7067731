package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
	"github.com/redis/go-redis/v9"
)

// failoverWrites are the writes a failover must not lose, each on keys
// held by one master, made through a store with Options.Replicas (or
// without), then checked again after the master died.
type failoverWrites struct {
	replays []dpop.ReplayKey
	codes   []store.TokenHash
	old     store.TokenHash // a rotated refresh token
	revoked store.TokenHash // a revoked access token
	used    store.TokenHash // an access token a proof was recorded with
	usedKey dpop.ReplayKey  // that proof's replay key
	grant   string          // a revoked grant, of the token rotated into
	next    store.TokenHash
}

// keysOn returns n random replay keys whose entries s keeps on the master
// at addr.
func keysOn(t *testing.T, s *Store, c *redis.ClusterClient, addr string, n int) []dpop.ReplayKey {
	t.Helper()
	var out []dpop.ReplayKey
	for len(out) < n {
		var k dpop.ReplayKey
		rand.Read(k[:])
		if masterAddr(t, c, s.replayKey(k)) == addr {
			out = append(out, k)
		}
	}
	return out
}

// hashesOn returns n random token hashes whose key (by keyOf) lies on the
// master at addr.
func hashesOn(t *testing.T, c *redis.ClusterClient, addr string, n int, keyOf func(store.TokenHash) string) []store.TokenHash {
	t.Helper()
	var out []store.TokenHash
	for len(out) < n {
		var h store.TokenHash
		rand.Read(h[:])
		if masterAddr(t, c, keyOf(h)) == addr {
			out = append(out, h)
		}
	}
	return out
}

func masterAddr(t *testing.T, c *redis.ClusterClient, key string) string {
	t.Helper()
	m, err := c.MasterForKey(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return m.Options().Addr
}

// write makes every kind of write on the master at addr through s.
func write(t *testing.T, s *Store, c *redis.ClusterClient, addr string) failoverWrites {
	t.Helper()
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	w := failoverWrites{replays: keysOn(t, s, c, addr, 100), codes: hashesOn(t, c, addr, 10, s.codeKey), grant: "grant-" + addr}
	for _, k := range w.replays {
		if ok, err := s.Insert(ctx, k, time.Hour); !ok || err != nil {
			t.Fatalf("Insert = %v, %v", ok, err)
		}
	}
	for _, h := range w.codes {
		if err := s.SaveCode(ctx, h, &store.AuthorizationCode{ClientID: "c", ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ConsumeCode(ctx, h); err != nil {
			t.Fatalf("ConsumeCode: %v", err)
		}
	}
	// Refresh tokens share one slot; the caller picks addr as its master.
	hs := hashesOn(t, c, addr, 2, s.refreshKey)
	w.old, w.next = hs[0], hs[1]
	if err := s.SaveRefreshToken(ctx, w.old, &store.RefreshToken{ClientID: "c", GrantID: w.grant, ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateRefreshToken(ctx, w.old, w.next, &store.RefreshToken{ClientID: "c", GrantID: w.grant, ExpiresAt: exp}); err != nil {
		t.Fatalf("RotateRefreshToken: %v", err)
	}
	if err := s.RevokeGrant(ctx, w.grant, exp); err != nil {
		t.Fatalf("RevokeGrant: %v", err)
	}
	w.revoked = hashesOn(t, c, addr, 1, s.accessKey)[0]
	if err := s.SaveAccessToken(ctx, w.revoked, &store.AccessToken{ClientID: "c", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAccessToken(ctx, w.revoked); err != nil {
		t.Fatalf("RevokeAccessToken: %v", err)
	}
	w.used, w.usedKey = hashesOn(t, c, addr, 1, s.accessKey)[0], dpop.NewReplayKey("jkt", "used-"+addr)
	if err := s.SaveAccessToken(ctx, w.used, &store.AccessToken{ClientID: "c", JKT: "jkt", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.UseAccessToken(ctx, w.used, "jkt", w.usedKey, time.Hour); !ok || err != nil {
		t.Fatalf("UseAccessToken = %v, %v", ok, err)
	}
	return w
}

// lost counts the writes of w that s no longer remembers; it retries a
// call that fails (the client learning the new master) for a few seconds.
func lost(t *testing.T, s *Store, w failoverWrites) (n int, what []string) {
	t.Helper()
	ctx := context.Background()
	// Each check returns what was lost ("" for nothing) or the call's
	// error, to retry.
	var checks []func() (string, error)
	for _, k := range w.replays {
		checks = append(checks, func() (string, error) {
			if ok, err := s.Insert(ctx, k, time.Hour); ok || err != nil {
				return "replay accepted", err
			}
			return "", nil
		})
	}
	for _, h := range w.codes {
		checks = append(checks, func() (string, error) {
			_, err := s.ConsumeCode(ctx, h)
			return lostIf(err, "code redeemed again", store.ErrConsumed)
		})
	}
	checks = append(checks,
		func() (string, error) {
			_, err := s.GetRefreshToken(ctx, w.old)
			return lostIf(err, "rotated refresh token live again", store.ErrConsumed, store.ErrRevoked)
		},
		func() (string, error) {
			_, err := s.GetRefreshToken(ctx, w.next)
			return lostIf(err, "revoked grant live again", store.ErrRevoked)
		},
		func() (string, error) {
			_, ok, err := s.UseAccessToken(ctx, w.used, "jkt", w.usedKey, time.Hour)
			if ok {
				return "resource proof accepted again", err
			}
			return lostIf(err, "")
		},
		func() (string, error) {
			_, err := s.GetAccessToken(ctx, w.revoked)
			if errors.Is(err, store.ErrNotFound) { // revoked: deleted
				return "", nil
			}
			return lostIf(err, "revoked access token live again")
		})
	for _, check := range checks {
		deadline := time.Now().Add(10 * time.Second)
		for {
			l, err := check()
			if err == nil {
				if l != "" {
					n++
					what = append(what, l)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("store still failing after failover: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return n, what
}

// lostIf reads a lookup's answer: no error means the write was lost (the
// record is live again), an error among kept says it was kept, ErrNotFound
// that the record itself was lost (refused, but lost); any other error is
// returned, to retry.
func lostIf(err error, live string, kept ...error) (string, error) {
	switch {
	case err == nil:
		return live, nil
	case errors.Is(err, store.ErrNotFound): // ErrExpired too
		return "record gone", nil
	}
	for _, k := range kept {
		if errors.Is(err, k) {
			return "", nil
		}
	}
	return "", err
}

// TestFailover kills masters of a private Redis Cluster right after
// writes, and replays every write once the master's replica has taken
// over. With Options.Replicas 1 nothing is lost: no proof is accepted
// again, no code redeemed twice, no rotated refresh token or revoked token
// or grant comes back. The control shows what the option prevents: writes
// a replica had not copied (its replication held off) are lost, replays
// accepted. With the replica held off, a store with Options.Replicas
// refuses the write (ErrNotReplicated) within its ReplicaTimeout. Once the
// killed node is back (as a replica of the new master), acknowledged
// writes work again without a new client or store.
func TestFailover(t *testing.T) {
	pc := startProcCluster(t)
	c := pc.client()
	const replicaTimeout = 300 * time.Millisecond
	acked, err := New(Options{Client: c, Prefix: "fo:", Replicas: 1, ReplicaTimeout: replicaTimeout})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := New(Options{Client: c, Prefix: "fo:"})
	if err != nil {
		t.Fatal(err)
	}
	ns, _ := pc.view()
	ms := masters(ns)

	// 1. Acknowledged writes survive the death of their master. On its
	// own this part would pass without WAIT too (replication on loopback
	// is quick); part 2 and TestReplicasFailClosed show the wait matters.
	m1 := masterAddr(t, c, acked.refreshKey(store.TokenHash{}))
	r1 := pc.replicaOf(m1)
	w := write(t, acked, c, m1)
	pc.kill(pc.node(m1))
	start := time.Now()
	pc.waitPromoted(r1)
	t.Logf("%s took over from %s in %v", r1, m1, time.Since(start).Round(time.Millisecond))
	if n, what := lost(t, plain, w); n != 0 {
		t.Errorf("with Replicas 1, %d writes were lost in the failover: %v", n, what)
	}
	// The shard has no replica left: acknowledged writes there fail closed.
	k := keysOn(t, acked, c, r1, 1)[0]
	if ok, err := acked.Insert(context.Background(), k, time.Hour); ok || !errors.Is(err, ErrNotReplicated) {
		t.Errorf("Insert on a master without replicas = %v, %v; want false, ErrNotReplicated", ok, err)
	}
	// The killed node comes back as the new master's replica, and the
	// same store's writes are acknowledged again.
	pc.start(pc.node(m1))
	deadline := time.Now().Add(30 * time.Second)
	for {
		k := keysOn(t, acked, c, r1, 1)[0]
		ok, err := acked.Insert(context.Background(), k, time.Hour)
		if ok && err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes not acknowledged 30s after the old master came back: %v, %v", ok, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// 2. The control: a master whose replica has not copied the writes.
	var m2 string
	for _, m := range ms {
		if m.addr != m1 {
			m2 = m.addr
			break
		}
	}
	r2 := pc.replicaOf(m2)
	pc.signal(pc.node(r2), syscall.SIGSTOP)
	// Cut the replication link, so that nothing the master writes now is
	// on its way to the replica when the replica resumes.
	mc := redis.NewClient(&redis.Options{Addr: m2})
	defer mc.Close()
	if err := mc.ClientKillByFilter(context.Background(), "TYPE", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	k = keysOn(t, acked, c, m2, 1)[0]
	start = time.Now()
	ok, err := acked.Insert(context.Background(), k, time.Hour)
	took := time.Since(start)
	if ok || !errors.Is(err, ErrNotReplicated) {
		t.Errorf("Insert with its replica away = %v, %v; want false, ErrNotReplicated", ok, err)
	}
	if took > replicaTimeout+time.Second {
		t.Errorf("Insert with its replica away took %v; ReplicaTimeout is %v", took, replicaTimeout)
	}
	t.Logf("Insert with the replica away failed in %v: %v", took.Round(time.Millisecond), err)
	// Redis replicates asynchronously: the master acknowledges these
	// writes before any replica has them.
	w2 := failoverWrites{replays: keysOn(t, plain, c, m2, 50)}
	for _, k := range w2.replays {
		if ok, err := plain.Insert(context.Background(), k, time.Hour); !ok || err != nil {
			t.Fatalf("Insert = %v, %v", ok, err)
		}
	}
	pc.kill(pc.node(m2))
	pc.signal(pc.node(r2), syscall.SIGCONT)
	pc.waitPromoted(r2)
	accepted := 0
	for _, k := range w2.replays {
		ok, err := plain.Insert(context.Background(), k, time.Hour)
		for i := 0; err != nil && i < 100; i++ {
			time.Sleep(50 * time.Millisecond)
			ok, err = plain.Insert(context.Background(), k, time.Hour)
		}
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			accepted++
		}
	}
	if accepted == 0 {
		t.Error("control: no unacknowledged write was lost; the test cannot tell whether Replicas matters")
	}
	t.Log(fmt.Sprintf("without Replicas, %d of %d replay entries were lost in the failover and their proofs accepted again", accepted, len(w2.replays)))
}
