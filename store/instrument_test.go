package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/store"
)

// recorder is a StoreCall hook that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []dpop.StoreEvent
}

func (r *recorder) hooks() *dpop.Hooks {
	return &dpop.Hooks{StoreCall: func(e dpop.StoreEvent) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.events = append(r.events, e)
	}}
}

func (r *recorder) take() []dpop.StoreEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

// TestInstrumentConformance: the wrapped memory store passes the adapter
// suite: the wrapper changes no behaviour.
func TestInstrumentConformance(t *testing.T) {
	adaptertest.Run(t, func(t *testing.T) (store.Store, func()) {
		s, done := newMemory(t)
		return store.Instrument(s, (&recorder{}).hooks()), done
	})
}

// TestInstrumentUnset: without a StoreCall hook the store is returned
// as it is.
func TestInstrumentUnset(t *testing.T) {
	m := memory(t)
	for _, h := range []*dpop.Hooks{nil, {}, {ProofChecked: func(dpop.ProofEvent) {}}} {
		if got := store.Instrument(m, h); got != store.Store(m) {
			t.Errorf("Instrument(m, %+v) wrapped the store", h)
		}
	}
}

func memory(t *testing.T) *store.Memory {
	t.Helper()
	m, err := store.NewMemory(store.MemoryOptions{MaxReplayEntries: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Stores with some of the optional interfaces of the memory store.
type (
	bare   struct{ store.Store }
	pushed struct {
		store.Store
		store.PushedRequestStore
	}
	pinger struct {
		store.Store
		store.Pinger
	}
	stats struct {
		store.Store
		dpop.ReplayCacheStats
	}
	pushedPinger struct {
		store.Store
		store.PushedRequestStore
		store.Pinger
	}
	pushedStats struct {
		store.Store
		store.PushedRequestStore
		dpop.ReplayCacheStats
	}
	pingerStats struct {
		store.Store
		store.Pinger
		dpop.ReplayCacheStats
	}
)

// TestInstrumentOptionalInterfaces: the wrapper implements exactly the
// optional interfaces of the store it wraps, and forwards the replay
// cache's capacity (so that dpop sizes quotas alike).
func TestInstrumentOptionalInterfaces(t *testing.T) {
	m := memory(t)
	for _, s := range []store.Store{
		bare{m}, pushed{m, m}, pinger{m, m}, stats{m, m},
		pushedPinger{m, m, m}, pushedStats{m, m, m}, pingerStats{m, m, m}, m,
	} {
		t.Run(fmt.Sprintf("%T", s), func(t *testing.T) {
			w := store.Instrument(s, (&recorder{}).hooks())
			_, p1 := s.(store.PushedRequestStore)
			_, p2 := w.(store.PushedRequestStore)
			_, g1 := s.(store.Pinger)
			_, g2 := w.(store.Pinger)
			_, r1 := s.(dpop.ReplayCacheStats)
			_, r2 := w.(dpop.ReplayCacheStats)
			if p1 != p2 || g1 != g2 || r1 != r2 {
				t.Errorf("PushedRequestStore %v→%v, Pinger %v→%v, ReplayCacheStats %v→%v", p1, p2, g1, g2, r1, r2)
			}
			if got, want := dpop.DefaultQuota(w), dpop.DefaultQuota(s); got != want {
				t.Errorf("DefaultQuota through the wrapper %+v, want %+v", got, want)
			}
		})
	}
}

// TestInstrumentEvents: each method reports one event, with its fixed
// operation name and the error it returned.
func TestInstrumentEvents(t *testing.T) {
	m := memory(t)
	rec := &recorder{}
	s := store.Instrument(m, rec.hooks())
	p, g, r := s.(store.PushedRequestStore), s.(store.Pinger), s.(dpop.ReplayCacheStats)
	ctx := context.Background()
	h := store.HashToken("x")
	now := time.Now()
	c := &store.Client{ID: "c1", GrantTypes: []string{store.GrantAuthorizationCode, store.GrantRefreshToken}, RedirectURIs: []string{"https://c.example.com/cb"}}
	key := dpop.NewReplayKey("jkt", "jti")
	for _, tc := range []struct {
		op   string
		call func() error
		want error
	}{
		{store.OpSaveClient, func() error { return s.SaveClient(ctx, c) }, nil},
		{store.OpGetClient, func() error { _, err := s.GetClient(ctx, "c1"); return err }, nil},
		{store.OpGetClient, func() error { _, err := s.GetClient(ctx, "nobody"); return err }, store.ErrNotFound},
		{store.OpSaveCode, func() error {
			return s.SaveCode(ctx, h, &store.AuthorizationCode{ClientID: "c1", GrantID: "g", ExpiresAt: now.Add(time.Minute)})
		}, nil},
		{store.OpGetCode, func() error { _, err := s.GetCode(ctx, h); return err }, nil},
		{store.OpConsumeCode, func() error { _, err := s.ConsumeCode(ctx, h); return err }, nil},
		{store.OpConsumeCode, func() error { _, err := s.ConsumeCode(ctx, h); return err }, store.ErrConsumed},
		{store.OpSaveAccessToken, func() error {
			return s.SaveAccessToken(ctx, h, &store.AccessToken{ClientID: "c1", GrantID: "g", ExpiresAt: now.Add(time.Minute)})
		}, nil},
		{store.OpGetAccessToken, func() error { _, err := s.GetAccessToken(ctx, h); return err }, nil},
		{store.OpRevokeAccessToken, func() error { return s.RevokeAccessToken(ctx, h) }, nil},
		{store.OpSaveRefreshToken, func() error {
			return s.SaveRefreshToken(ctx, h, &store.RefreshToken{ClientID: "c1", GrantID: "g", ExpiresAt: now.Add(time.Minute)})
		}, nil},
		{store.OpGetRefreshToken, func() error { _, err := s.GetRefreshToken(ctx, h); return err }, nil},
		{store.OpRotateRefreshToken, func() error {
			_, err := s.RotateRefreshToken(ctx, h, store.HashToken("y"), &store.RefreshToken{ClientID: "c1", GrantID: "g", ExpiresAt: now.Add(time.Minute)})
			return err
		}, nil},
		{store.OpRevokeRefreshToken, func() error { return s.RevokeRefreshToken(ctx, store.HashToken("y")) }, nil},
		{store.OpRevokeGrant, func() error { return s.RevokeGrant(ctx, "g", now.Add(time.Hour)) }, nil},
		{store.OpReplayInsert, func() error { _, err := s.Insert(ctx, key, time.Minute); return err }, nil},
		{store.OpSavePushedRequest, func() error {
			return p.SavePushedRequest(ctx, h, &store.PushedRequest{ClientID: "c1", ExpiresAt: now.Add(time.Minute)})
		}, nil},
		{store.OpGetPushedRequest, func() error { _, err := p.GetPushedRequest(ctx, h); return err }, nil},
		{store.OpConsumePushedRequest, func() error { _, err := p.ConsumePushedRequest(ctx, h); return err }, nil},
		{store.OpPing, func() error { return g.Ping(ctx) }, nil},
	} {
		err := tc.call()
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Fatalf("%s: %v, want %v", tc.op, err, tc.want)
		}
		ev := rec.take()
		if len(ev) != 1 || ev[0].Operation != tc.op || ev[0].Err != err || ev[0].Duration < 0 {
			t.Errorf("%s: events %+v, want one %s with %v", tc.op, ev, tc.op, err)
		}
	}
	// The fill level and the capacity are no store calls: no event.
	if n := r.ReplayEntries(); n != 1 {
		t.Errorf("ReplayEntries = %d, want 1", n)
	}
	if ev := rec.take(); len(ev) != 0 {
		t.Errorf("ReplayEntries reported %+v", ev)
	}
	// A failing store: the error is reported as returned.
	m.Close()
	err := g.Ping(ctx)
	if ev := rec.take(); !errors.Is(err, store.ErrClosed) || len(ev) != 1 || ev[0].Err != err || store.Outcome(ev[0].Err) != store.OutcomeError {
		t.Errorf("Ping of a closed store: %v, events %+v", err, ev)
	}
}

// TestOutcome: the result label of each kind of store error.
func TestOutcome(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, store.OutcomeOK},
		{store.ErrNotFound, store.OutcomeMiss},
		{store.ErrExpired, store.OutcomeMiss},
		{store.ErrConsumed, store.OutcomeMiss},
		{store.ErrRevoked, store.OutcomeMiss},
		{store.ErrFull, store.OutcomeFull},
		{store.ErrShareFull, store.OutcomeFull},
		{fmt.Errorf("pgstore: %w", context.DeadlineExceeded), store.OutcomeCanceled},
		{context.Canceled, store.OutcomeCanceled},
		{store.ErrClosed, store.OutcomeError},
		{errors.New("connection refused"), store.OutcomeError},
	} {
		if got := store.Outcome(tc.err); got != tc.want {
			t.Errorf("Outcome(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// issuing is a memory store with store.AccessTokenIssuer.
type issuing struct{ *store.Memory }

func (s issuing) InsertAndSaveAccessToken(ctx context.Context, key dpop.ReplayKey, ttl time.Duration, h store.TokenHash, t *store.AccessToken) (bool, error) {
	ok, err := s.Insert(ctx, key, ttl)
	if err != nil || !ok {
		return false, err
	}
	return true, s.SaveAccessToken(ctx, h, t)
}

// TestInstrumentIssuer: the wrapper always implements
// store.AccessTokenIssuer: forwarded as one event to a store that has it,
// Insert then SaveAccessToken (two events, no save for a recorded key) for
// one that has not.
func TestInstrumentIssuer(t *testing.T) {
	ctx := context.Background()
	tok := func() *store.AccessToken {
		return &store.AccessToken{ClientID: "c1", GrantID: "g", ExpiresAt: time.Now().Add(time.Minute)}
	}
	for _, tc := range []struct {
		s          store.Store
		first, dup []string
	}{
		{issuing{memory(t)}, []string{store.OpInsertAndSaveAccessToken}, []string{store.OpInsertAndSaveAccessToken}},
		{memory(t), []string{store.OpReplayInsert, store.OpSaveAccessToken}, []string{store.OpReplayInsert}},
	} {
		rec := &recorder{}
		w, ok := store.Instrument(tc.s, rec.hooks()).(store.AccessTokenIssuer)
		if !ok {
			t.Fatalf("%T: the wrapper does not implement store.AccessTokenIssuer", tc.s)
		}
		key := dpop.NewReplayKey("jkt", "jti")
		for i, want := range [][]string{tc.first, tc.dup} {
			h := store.HashToken(fmt.Sprint("t", i))
			ok, err := w.InsertAndSaveAccessToken(ctx, key, time.Minute, h, tok())
			if err != nil || ok != (i == 0) {
				t.Fatalf("%T call %d: %v, %v", tc.s, i, ok, err)
			}
			var ops []string
			for _, e := range rec.take() {
				ops = append(ops, e.Operation)
			}
			if fmt.Sprint(ops) != fmt.Sprint(want) {
				t.Errorf("%T call %d: events %v, want %v", tc.s, i, ops, want)
			}
			if _, err := tc.s.GetAccessToken(ctx, h); (err == nil) != (i == 0) {
				t.Errorf("%T call %d: GetAccessToken %v", tc.s, i, err)
			}
		}
	}
}
