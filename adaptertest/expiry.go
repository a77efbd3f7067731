package adaptertest

import (
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// testExpiry saves records that live shortTTL, checks they are there, waits
// past their expiry and checks that no lookup returns them; with the
// lifetime subtests (lifetimeTests), it checks how long records live. The
// subtests run concurrently, so the group waits about once, about three
// seconds.
func testExpiry(t *testing.T, newStore NewStore) {
	var timed []timedTest
	add := func(name string, run func(*testing.T, store.Store)) {
		timed = append(timed, timedTest{name, run})
	}
	add("Codes", func(t *testing.T, s store.Store) {
		h, used := randomHash(), randomHash()
		must(t, s.SaveCode(bg, h, sampleCode("g", now().Add(shortTTL))), "SaveCode")
		must(t, s.SaveCode(bg, used, sampleCode("g", now().Add(shortTTL))), "SaveCode")
		_, err := s.ConsumeCode(bg, used)
		must(t, err, "ConsumeCode before expiry")
		_, err = s.GetCode(bg, h)
		must(t, err, "GetCode before expiry")
		time.Sleep(waitExpiry)
		_, err = s.ConsumeCode(bg, h)
		wantErr(t, err, store.ErrNotFound, "ConsumeCode of an expired code")
		_, err = s.ConsumeCode(bg, used)
		wantErr(t, err, store.ErrNotFound, "ConsumeCode of an expired, used code")
		_, err = s.GetCode(bg, h)
		wantErr(t, err, store.ErrNotFound, "GetCode of an expired code")
		_, err = s.GetCode(bg, used)
		wantErr(t, err, store.ErrNotFound, "GetCode of an expired, used code")
	})
	add("AccessTokens", func(t *testing.T, s store.Store) {
		h := randomHash()
		must(t, s.SaveAccessToken(bg, h, sampleAccess("g", now().Add(shortTTL))), "SaveAccessToken")
		_, err := s.GetAccessToken(bg, h)
		must(t, err, "GetAccessToken before expiry")
		time.Sleep(waitExpiry)
		_, err = s.GetAccessToken(bg, h)
		wantErr(t, err, store.ErrNotFound, "GetAccessToken of an expired token")
	})
	add("RefreshTokens", func(t *testing.T, s store.Store) {
		h, next := randomHash(), randomHash()
		must(t, s.SaveRefreshToken(bg, h, sampleRefresh("g", now().Add(shortTTL))), "SaveRefreshToken")
		_, err := s.GetRefreshToken(bg, h)
		must(t, err, "GetRefreshToken before expiry")
		time.Sleep(waitExpiry)
		_, err = s.GetRefreshToken(bg, h)
		wantErr(t, err, store.ErrNotFound, "GetRefreshToken of an expired token")
		_, err = s.RotateRefreshToken(bg, h, next, sampleRefresh("g", now().Add(time.Hour)))
		wantErr(t, err, store.ErrNotFound, "RotateRefreshToken of an expired token")
		_, err = s.GetRefreshToken(bg, next)
		wantErr(t, err, store.ErrNotFound, "token stored by a refused rotation")
	})
	add("Replay", func(t *testing.T, s store.Store) {
		k := dpop.NewReplayKey("jkt", "short")
		ok, err := s.Insert(bg, k, shortTTL)
		must(t, err, "Insert")
		if !ok {
			t.Fatal("first Insert refused")
		}
		if ok, err = s.Insert(bg, k, shortTTL); err != nil || ok {
			t.Fatalf("Insert before expiry: %v, %v; want a replay", ok, err)
		}
		time.Sleep(waitExpiry)
		ok, err = s.Insert(bg, k, shortTTL)
		must(t, err, "Insert after expiry")
		if !ok {
			t.Fatal("an expired replay entry still refuses its key")
		}
	})
	timed = append(timed, lifetimeTests()...)
	concurrently(t, newStore, timed)
}

// timedTest is a subtest that mostly waits for time to pass.
type timedTest struct {
	name string
	run  func(*testing.T, store.Store)
}

// concurrently runs each timed subtest, over a fresh store, in a goroutine
// of its own, and returns when all have ended. They mostly sleep, so they
// all run at once however small -test.parallel is (t.Parallel would hold
// all but GOMAXPROCS of them back), and the group lasts about as long as
// its longest subtest.
func concurrently(t *testing.T, newStore NewStore, tests []timedTest) {
	var wg sync.WaitGroup
	for _, tt := range tests {
		wg.Go(func() {
			t.Run(tt.name, func(t *testing.T) { tt.run(t, open(t, newStore)) })
		})
	}
	wg.Wait()
}
