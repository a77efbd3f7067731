package adaptertest

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// Lifetime subtests: that a store keeps what it must for as long as it must,
// and forgets it when it should, to the millisecond precision it promises.
// Presence right after a write proves little: an entry that lives 300 ms
// whatever its ttl, a revocation that lasts 200 ms, or an expiry cut to
// whole seconds all pass it. They run in parallel with the other Expiry
// subtests; none waits more than about three seconds.
const (
	// lifeTTL is how long the entries of the whole-life subtests live;
	// they are probed several times over it, the last probe probeMargin
	// before its end.
	lifeTTL = 2500 * time.Millisecond
	// probeMargin is how far from an expiry a probe is made: a probe of a
	// live entry that much before it, of a gone one that much after.
	probeMargin = 300 * time.Millisecond
	// subsecondLife is the lifetime of the records of the sub-second
	// subtests. They are saved on a whole second, so that their expiry,
	// and their ttl, fall on a half second: a store that truncates,
	// rounds or rounds up either to whole seconds moves it by half a
	// second, beyond probeMargin.
	subsecondLife = 1500 * time.Millisecond
)

// lifetimeTests are the lifetime subtests, which run with the other Expiry
// subtests.
func lifetimeTests() []timedTest {
	tests := []struct {
		name string
		run  func(testing.TB, store.Store)
	}{
		{"ReplayLivesWholeTTL", testReplayWholeTTL},
		{"GrantRevocationLastsUntil", testRevocationLasts},
		{"GrantRevocationNotShortened", testRevocationNotShortened},
		{"GrantRevocationExtended", testRevocationExtended},
		{"SubsecondCodes", func(t testing.TB, s store.Store) { subsecond(t, s, subsecondCodes()) }},
		{"SubsecondAccessTokens", func(t testing.TB, s store.Store) { subsecond(t, s, subsecondAccess()) }},
		{"SubsecondRefreshTokens", func(t testing.TB, s store.Store) { subsecond(t, s, subsecondRefresh()) }},
		{"SubsecondReplay", func(t testing.TB, s store.Store) { subsecond(t, s, subsecondReplay()) }},
	}
	out := make([]timedTest, len(tests))
	for i, tt := range tests {
		out[i] = timedTest{tt.name, func(t *testing.T, s store.Store) { retryLate(t, s, tt.run) }}
	}
	return out
}

// lateAttempts is how many times a lifetime subtest is run when its probes
// cannot be made in time.
const lateAttempts = 3

// attempt is one run of a lifetime subtest. It stands in for the subtest's
// testing.TB and holds back its failures: a failure of a probe that was made
// too late to tell (the machine stalled past the end of what it probes) marks
// the run inconclusive instead, and the subtest runs again with fresh records.
// Only a conclusive run's failures reach the test.
type attempt struct {
	testing.TB
	mu       sync.Mutex
	deadline time.Time // end of what the current probe checks; zero: none
	late     bool
	failures []string
}

func (a *attempt) Errorf(format string, args ...any) { a.record(fmt.Sprintf(format, args...)) }
func (a *attempt) Error(args ...any)                 { a.record(fmt.Sprint(args...)) }
func (a *attempt) Fatalf(format string, args ...any) { a.Errorf(format, args...); runtime.Goexit() }
func (a *attempt) Fatal(args ...any)                 { a.Error(args...); runtime.Goexit() }
func (a *attempt) Fail()                             { a.record("failed") }
func (a *attempt) FailNow()                          { a.Fail(); runtime.Goexit() }

func (a *attempt) record(msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.deadline.IsZero() && time.Now().After(a.deadline) {
		a.late = true
		return
	}
	a.failures = append(a.failures, msg)
}

// retryLate runs a lifetime subtest until one run is conclusive, at most
// lateAttempts times, and reports that run's failures. A machine too loaded
// for every run fails the subtest: CI must not pass what it did not check.
func retryLate(t testing.TB, s store.Store, run func(testing.TB, store.Store)) {
	t.Helper()
	for i := 1; ; i++ {
		a := &attempt{TB: t}
		done := make(chan struct{})
		go func() { // Fatal on an attempt ends this goroutine, not the test's
			defer close(done)
			run(a, s)
		}()
		<-done
		if !a.late {
			for _, f := range a.failures {
				t.Error(f)
			}
			if len(a.failures) > 0 {
				t.FailNow()
			}
			return
		}
		if i == lateAttempts {
			t.Fatalf("in %d runs a probe could not be made before the end of what it probes: the machine is too loaded to check lifetimes", i)
		}
		t.Logf("run %d: a probe was late (the machine stalled), running again with fresh records", i)
	}
}

// probeAt sleeps until at, for a probe of something that must still be
// there, which ends at end: a failure the probe reports after end is a late
// probe, not a store's fault. A probe that wakes too near end to tell ends
// the run as late.
func probeAt(t testing.TB, at, end time.Time) {
	t.Helper()
	time.Sleep(time.Until(at))
	a, ok := t.(*attempt)
	if !ok {
		panic("adaptertest: probeAt outside retryLate")
	}
	a.mu.Lock()
	a.deadline = end
	tooLate := time.Until(end) < probeMargin/3
	if tooLate {
		a.late = true
	}
	a.mu.Unlock()
	if tooLate {
		runtime.Goexit()
	}
}

// probesDone ends the probes of things that must still be there: later
// failures (of things that must be gone) count whenever they happen.
func probesDone(t testing.TB) {
	a := t.(*attempt)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.deadline = time.Time{}
}

// testReplayWholeTTL: a replay entry refuses its key for its whole ttl
// (dpop.ReplayCache: "an entry must live at least for ttl"), probed over
// its life and probeMargin before its end, and lets it in again once it
// has expired. Each probe asks for the entry's remaining life, so that a
// store that extends an entry on a refused insert ends it at the same time.
func testReplayWholeTTL(t testing.TB, s store.Store) {
	k := dpop.ReplayKey(randomHash())
	start := time.Now()
	end := start.Add(lifeTTL)
	ok, err := s.Insert(bg, k, lifeTTL)
	must(t, err, "Insert")
	if !ok {
		t.Fatal("first Insert refused")
	}
	for _, at := range []time.Duration{200 * time.Millisecond, 700 * time.Millisecond, 1200 * time.Millisecond, 1700 * time.Millisecond, lifeTTL - probeMargin} {
		probeAt(t, start.Add(at), end)
		ok, err := s.Insert(bg, k, max(time.Until(end), time.Millisecond))
		must(t, err, "Insert of a live key")
		if ok {
			t.Fatalf("a key inserted with ttl %v was accepted again after %v: the entry did not live its ttl, a replayed proof would pass", lifeTTL, at)
		}
	}
	probesDone(t)
	time.Sleep(time.Until(end.Add(probeMargin)))
	ok, err = s.Insert(bg, k, lifeTTL)
	must(t, err, "Insert after expiry")
	if !ok {
		t.Fatalf("a key inserted with ttl %v is still refused %v after it expired", lifeTTL, probeMargin)
	}
}

// revoked checks, at a probe, that the grant's tokens are revoked: the
// saved ones, a rotation, and a token saved now.
func revoked(t testing.TB, s store.Store, grant string, at store.TokenHash, rt store.TokenHash, exp time.Time, when string) {
	t.Helper()
	_, err := s.GetAccessToken(bg, at)
	wantErr(t, err, store.ErrRevoked, when+": access token of the revoked grant")
	_, err = s.GetRefreshToken(bg, rt)
	wantErr(t, err, store.ErrRevoked, when+": refresh token of the revoked grant")
	next := randomHash()
	_, err = s.RotateRefreshToken(bg, rt, next, sampleRefresh(grant, exp))
	wantErr(t, err, store.ErrRevoked, when+": rotation of a refresh token of the revoked grant")
	_, err = s.GetRefreshToken(bg, next)
	wantErr(t, err, store.ErrNotFound, when+": token stored by a refused rotation")
	fresh := randomHash()
	must(t, s.SaveAccessToken(bg, fresh, sampleAccess(grant, exp)), "SaveAccessToken")
	_, err = s.GetAccessToken(bg, fresh)
	wantErr(t, err, store.ErrRevoked, when+": access token of the revoked grant saved now")
}

// freshGrant is a grant id no earlier run used.
func freshGrant(name string) string {
	h := randomHash()
	return fmt.Sprintf("%s-%x", name, h[:6])
}

// grantTokens saves an access and a refresh token of grant, expiring at
// exp.
func grantTokens(t testing.TB, s store.Store, grant string, exp time.Time) (at, rt store.TokenHash) {
	t.Helper()
	at, rt = randomHash(), randomHash()
	must(t, s.SaveAccessToken(bg, at, sampleAccess(grant, exp)), "SaveAccessToken")
	must(t, s.SaveRefreshToken(bg, rt, sampleRefresh(grant, exp)), "SaveRefreshToken")
	return at, rt
}

// testRevocationLasts: a grant revocation holds until its until, probed
// over its life and probeMargin before the end; its tokens expire then, as
// the caller of RevokeGrant arranges.
func testRevocationLasts(t testing.TB, s store.Store) {
	start := now()
	until := start.Add(lifeTTL)
	grant := freshGrant("revoked-for-a-while")
	at, rt := grantTokens(t, s, grant, until)
	otherAT, _ := grantTokens(t, s, freshGrant("not-revoked"), until)
	must(t, s.RevokeGrant(bg, grant, until), "RevokeGrant")
	for _, d := range []time.Duration{200 * time.Millisecond, 900 * time.Millisecond, 1600 * time.Millisecond, lifeTTL - probeMargin} {
		probeAt(t, start.Add(d), until)
		revoked(t, s, grant, at, rt, until, fmt.Sprintf("%v into a revocation of %v", d, lifeTTL))
	}
	_, err := s.GetAccessToken(bg, otherAT)
	must(t, err, "access token of another grant")
}

// testRevocationNotShortened: a later RevokeGrant of the same grant with an
// earlier until, or one already past, leaves the revocation as long as it
// was: the revocations of a code replay and of a refresh token reuse may
// come in any order.
func testRevocationNotShortened(t testing.TB, s store.Store) {
	start := now()
	until := start.Add(lifeTTL)
	grant := freshGrant("revoked-twice")
	at, rt := grantTokens(t, s, grant, until)
	must(t, s.RevokeGrant(bg, grant, until), "RevokeGrant")
	must(t, s.RevokeGrant(bg, grant, start.Add(400*time.Millisecond)), "RevokeGrant with an earlier until")
	must(t, s.RevokeGrant(bg, grant, start.Add(-time.Second)), "RevokeGrant with an until already past")
	for _, d := range []time.Duration{900 * time.Millisecond, 1600 * time.Millisecond, lifeTTL - probeMargin} {
		probeAt(t, start.Add(d), until)
		revoked(t, s, grant, at, rt, until, fmt.Sprintf("%v into a revocation of %v, shortened later to 400ms", d, lifeTTL))
	}
}

// testRevocationExtended: a later RevokeGrant with a later until extends
// the revocation to it.
func testRevocationExtended(t testing.TB, s store.Store) {
	start := now()
	until := start.Add(lifeTTL)
	grant := freshGrant("revoked-longer")
	at, rt := grantTokens(t, s, grant, until)
	must(t, s.RevokeGrant(bg, grant, start.Add(600*time.Millisecond)), "RevokeGrant")
	must(t, s.RevokeGrant(bg, grant, until), "RevokeGrant with a later until")
	for _, d := range []time.Duration{1100 * time.Millisecond, 1700 * time.Millisecond, lifeTTL - probeMargin} {
		probeAt(t, start.Add(d), until)
		revoked(t, s, grant, at, rt, until, fmt.Sprintf("%v into a revocation of 600ms, extended to %v", d, lifeTTL))
	}
}

// subsecondCheck is one kind of record in a sub-second subtest: save
// stores records expiring at exp (ttl from now, for the replay cache);
// live checks them probeMargin before, gone probeMargin after.
type subsecondCheck struct {
	save       func(t testing.TB, s store.Store, exp time.Time, ttl time.Duration)
	live, gone func(t testing.TB, s store.Store)
}

// subsecond saves records on a whole second to expire subsecondLife later,
// on a half second, and checks that they are live probeMargin before that
// and gone probeMargin after.
func subsecond(t testing.TB, s store.Store, c subsecondCheck) {
	start := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(start))
	exp := start.Add(subsecondLife)
	c.save(t, s, exp, time.Until(exp))
	probeAt(t, exp.Add(-probeMargin), exp)
	c.live(t, s)
	probesDone(t)
	time.Sleep(time.Until(exp.Add(probeMargin)))
	c.gone(t, s)
}

func subsecondWhat(when string) string {
	return fmt.Sprintf("%v %s the expiry (on a half second)", probeMargin, when)
}

func subsecondCodes() subsecondCheck {
	peeked, used := randomHash(), randomHash()
	return subsecondCheck{
		save: func(t testing.TB, s store.Store, exp time.Time, _ time.Duration) {
			must(t, s.SaveCode(bg, peeked, sampleCode("g", exp)), "SaveCode")
			must(t, s.SaveCode(bg, used, sampleCode("g", exp)), "SaveCode")
		},
		live: func(t testing.TB, s store.Store) {
			_, err := s.GetCode(bg, peeked)
			must(t, err, "GetCode "+subsecondWhat("before"))
			_, err = s.ConsumeCode(bg, used)
			must(t, err, "ConsumeCode "+subsecondWhat("before"))
		},
		gone: func(t testing.TB, s store.Store) {
			for _, h := range []store.TokenHash{peeked, used} {
				_, err := s.GetCode(bg, h)
				wantErr(t, err, store.ErrNotFound, "GetCode "+subsecondWhat("after"))
				_, err = s.ConsumeCode(bg, h)
				wantErr(t, err, store.ErrNotFound, "ConsumeCode "+subsecondWhat("after"))
			}
		},
	}
}

func subsecondAccess() subsecondCheck {
	h := randomHash()
	return subsecondCheck{
		save: func(t testing.TB, s store.Store, exp time.Time, _ time.Duration) {
			must(t, s.SaveAccessToken(bg, h, sampleAccess("g", exp)), "SaveAccessToken")
		},
		live: func(t testing.TB, s store.Store) {
			_, err := s.GetAccessToken(bg, h)
			must(t, err, "GetAccessToken "+subsecondWhat("before"))
		},
		gone: func(t testing.TB, s store.Store) {
			_, err := s.GetAccessToken(bg, h)
			wantErr(t, err, store.ErrNotFound, "GetAccessToken "+subsecondWhat("after"))
		},
	}
}

func subsecondRefresh() subsecondCheck {
	h, rotated, next, late := randomHash(), randomHash(), randomHash(), randomHash()
	return subsecondCheck{
		save: func(t testing.TB, s store.Store, exp time.Time, _ time.Duration) {
			must(t, s.SaveRefreshToken(bg, h, sampleRefresh("g", exp)), "SaveRefreshToken")
			must(t, s.SaveRefreshToken(bg, rotated, sampleRefresh("g", exp)), "SaveRefreshToken")
		},
		live: func(t testing.TB, s store.Store) {
			_, err := s.GetRefreshToken(bg, h)
			must(t, err, "GetRefreshToken "+subsecondWhat("before"))
			_, err = s.RotateRefreshToken(bg, rotated, next, sampleRefresh("g", now().Add(time.Hour)))
			must(t, err, "RotateRefreshToken "+subsecondWhat("before"))
		},
		gone: func(t testing.TB, s store.Store) {
			_, err := s.GetRefreshToken(bg, h)
			wantErr(t, err, store.ErrNotFound, "GetRefreshToken "+subsecondWhat("after"))
			_, err = s.RotateRefreshToken(bg, h, late, sampleRefresh("g", now().Add(time.Hour)))
			wantErr(t, err, store.ErrNotFound, "RotateRefreshToken "+subsecondWhat("after"))
			_, err = s.GetRefreshToken(bg, late)
			wantErr(t, err, store.ErrNotFound, "token stored by a refused rotation")
			_, err = s.GetRefreshToken(bg, rotated)
			wantErr(t, err, store.ErrNotFound, "GetRefreshToken of a rotated token "+subsecondWhat("after"))
			_, err = s.GetRefreshToken(bg, next)
			must(t, err, "GetRefreshToken of the token it was rotated into, which lives an hour")
		},
	}
}

func subsecondReplay() subsecondCheck {
	k := dpop.ReplayKey(randomHash())
	var end time.Time
	return subsecondCheck{
		save: func(t testing.TB, s store.Store, exp time.Time, ttl time.Duration) {
			end = exp
			ok, err := s.Insert(bg, k, ttl)
			must(t, err, "Insert")
			if !ok {
				t.Fatal("first Insert refused")
			}
		},
		live: func(t testing.TB, s store.Store) {
			ok, err := s.Insert(bg, k, max(time.Until(end), time.Millisecond))
			must(t, err, "Insert "+subsecondWhat("before"))
			if ok {
				t.Fatalf("a replay key was accepted again %s: its entry did not live its ttl", subsecondWhat("before"))
			}
		},
		gone: func(t testing.TB, s store.Store) {
			ok, err := s.Insert(bg, k, time.Minute)
			must(t, err, "Insert "+subsecondWhat("after"))
			if !ok {
				t.Fatalf("a replay key is still refused %s", subsecondWhat("after"))
			}
		},
	}
}
