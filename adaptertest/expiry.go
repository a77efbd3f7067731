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
		expires(t, "AccessToken", func(exp time.Time) error { return s.SaveAccessToken(bg, h, sampleAccess("g", exp)) },
			func() error { _, err := s.GetAccessToken(bg, h); return err })
	})
	add("RefreshTokens", func(t *testing.T, s store.Store) {
		h, next := randomHash(), randomHash()
		expires(t, "RefreshToken", func(exp time.Time) error { return s.SaveRefreshToken(bg, h, sampleRefresh("g", exp)) },
			func() error { _, err := s.GetRefreshToken(bg, h); return err })
		_, err := s.RotateRefreshToken(bg, h, next, sampleRefresh("g", now().Add(time.Hour)))
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
	add("PushedRequests", func(t *testing.T, s store.Store) { expiryPushed(t, s) })
	timed = append(timed, lifetimeTests()...)
	concurrently(t, newStore, timed)
}

// expires saves a token that lives shortTTL (save gets its expiry) and
// checks that get finds it; then, past its expiry, that get answers
// ErrNotFound. kind names the token in the messages: AccessToken or
// RefreshToken.
func expires(t *testing.T, kind string, save func(exp time.Time) error, get func() error) {
	t.Helper()
	must(t, save(now().Add(shortTTL)), "Save"+kind)
	must(t, get(), "Get"+kind+" before expiry")
	time.Sleep(waitExpiry)
	wantErr(t, get(), store.ErrNotFound, "Get"+kind+" of an expired token")
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
