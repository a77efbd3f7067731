package adaptertest

import (
	"testing"
	"time"

	"github.com/dpopkit/dpop"
)

func testReplay(t *testing.T, newStore NewStore) {
	t.Run("InsertOnce", func(t *testing.T) {
		s := open(t, newStore)
		k := dpop.NewReplayKey("jkt", "jti-1")
		ok, err := s.Insert(bg, k, time.Minute)
		must(t, err, "Insert")
		if !ok {
			t.Fatal("first Insert of a key reported a replay")
		}
		for range 2 {
			ok, err = s.Insert(bg, k, time.Minute)
			must(t, err, "Insert again")
			if ok {
				t.Fatal("second Insert of a key was accepted: a replayed proof would pass")
			}
		}
		ok, err = s.Insert(bg, dpop.NewReplayKey("jkt", "jti-2"), time.Minute)
		must(t, err, "Insert of another key")
		if !ok {
			t.Fatal("another key was refused")
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		s := open(t, newStore)
		raceKeys(t, "inserts", "jkt", func(k dpop.ReplayKey) (bool, error) { return s.Insert(bg, k, time.Minute) })
	})
	t.Run("OddKeys", func(t *testing.T) {
		s := open(t, newStore)
		for _, h := range oddHashes() {
			ok, err := s.Insert(bg, dpop.ReplayKey(h), time.Minute)
			must(t, err, "Insert")
			if !ok {
				t.Fatalf("odd key %x collided with another", h[:4])
			}
		}
	})
}
