package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
	"github.com/dpopkit/dpop/store/redisstore"
)

// TestInsertAndSaveOneRoundTrip: on a single server the replay entry and
// the token take one round trip (one script), a replayed key one too, and
// nothing is saved for it.
func TestInsertAndSaveOneRoundTrip(t *testing.T) {
	c := newClient(t)
	hook := &countHook{}
	c.AddHook(hook)
	s, _ := newStore(t, c)
	ctx := context.Background()
	key := dpop.NewReplayKey("jkt", "one-trip")
	tok := &store.AccessToken{ClientID: "c", GrantID: "g", ExpiresAt: time.Now().Add(time.Hour)}
	// A first call loads the script (a server that did not hold it answers
	// NOSCRIPT and gets it in full): not counted.
	if _, err := s.InsertAndSaveAccessToken(ctx, dpop.NewReplayKey("jkt", "warm-up"), time.Minute, store.TokenHash{0xff}, tok); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		h := store.TokenHash{byte(i), 7}
		before := hook.n.Load()
		ok, err := s.InsertAndSaveAccessToken(ctx, key, time.Minute, h, tok)
		if err != nil || ok != want {
			t.Fatalf("call %d: %v, %v; want %v", i, ok, err, want)
		}
		if n := hook.n.Load() - before; n != 1 {
			t.Errorf("call %d took %d round trips, want 1", i, n)
		}
		if _, err := s.GetAccessToken(ctx, h); (err == nil) != want {
			t.Errorf("call %d: GetAccessToken %v", i, err)
		}
	}
}

// TestInsertAndSaveReplicasFailClosed: with Options.Replicas on a server
// without replicas, the script fails with ErrNotReplicated and reports no
// insert, as Insert does; the entry reached the master and refuses the key.
func TestInsertAndSaveReplicasFailClosed(t *testing.T) {
	c := newClient(t)
	prefix := cleanPrefix(t, c)
	// One store waiting for a replica, one not, over the same keys.
	var acked [2]*redisstore.Store
	for i := range acked {
		var err error
		if acked[i], err = redisstore.New(redisstore.Options{Client: c, Prefix: prefix, Replicas: 1 - i, ReplicaTimeout: 20 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	s, plain := acked[0], acked[1]
	ctx := context.Background()
	key := dpop.NewReplayKey("jkt", "unreplicated")
	ok, err := s.InsertAndSaveAccessToken(ctx, key, time.Minute, store.TokenHash{9}, &store.AccessToken{ClientID: "c", ExpiresAt: time.Now().Add(time.Hour)})
	if ok || !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("InsertAndSaveAccessToken without a replica = %v, %v; want a failure with ErrNotReplicated", ok, err)
	}
	if ok, err := plain.Insert(ctx, key, time.Minute); ok || err != nil {
		t.Errorf("replay after a refused acknowledgement = %v, %v; want false", ok, err)
	}
}
