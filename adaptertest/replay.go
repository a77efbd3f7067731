package adaptertest

import (
	"fmt"
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
		for round := range raceRounds {
			k := dpop.NewReplayKey("jkt", fmt.Sprintf("contended-%d", round))
			wins := race(t, func(int) error {
				ok, err := s.Insert(bg, k, time.Minute)
				if err == nil && !ok {
					return errReplayed
				}
				return err
			}, errReplayed)
			if wins != 1 {
				t.Fatalf("round %d of %d: %d of %d concurrent inserts of one key succeeded, want exactly 1", round+1, raceRounds, wins, racers)
			}
		}
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
