package adaptertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// testContext checks that a cancelled context stops every method with an
// error wrapping context.Canceled, and that a consuming call that was
// cancelled consumed nothing.
func testContext(t *testing.T, newStore NewStore) {
	s := open(t, newStore)
	exp := now().Add(time.Hour)
	code, at, rt := randomHash(), randomHash(), randomHash()
	must(t, s.SaveCode(bg, code, sampleCode("g", exp)), "SaveCode")
	must(t, s.SaveAccessToken(bg, at, sampleAccess("g", exp)), "SaveAccessToken")
	must(t, s.SaveRefreshToken(bg, rt, sampleRefresh("g", exp)), "SaveRefreshToken")
	must(t, s.SaveClient(bg, sampleClient("demo")), "SaveClient")

	ctx, cancel := context.WithCancel(bg)
	cancel()
	fresh := randomHash()
	key := dpop.NewReplayKey("jkt", "cancelled")
	calls := map[string]func() error{
		"GetClient":         func() error { _, err := s.GetClient(ctx, "demo"); return err },
		"SaveClient":        func() error { return s.SaveClient(ctx, sampleClient("other")) },
		"SaveCode":          func() error { return s.SaveCode(ctx, fresh, sampleCode("g", exp)) },
		"GetCode":           func() error { _, err := s.GetCode(ctx, code); return err },
		"ConsumeCode":       func() error { _, err := s.ConsumeCode(ctx, code); return err },
		"SaveAccessToken":   func() error { return s.SaveAccessToken(ctx, fresh, sampleAccess("g", exp)) },
		"GetAccessToken":    func() error { _, err := s.GetAccessToken(ctx, at); return err },
		"RevokeAccessToken": func() error { return s.RevokeAccessToken(ctx, at) },
		"SaveRefreshToken":  func() error { return s.SaveRefreshToken(ctx, fresh, sampleRefresh("g", exp)) },
		"GetRefreshToken":   func() error { _, err := s.GetRefreshToken(ctx, rt); return err },
		"RotateRefreshToken": func() error {
			_, err := s.RotateRefreshToken(ctx, rt, randomHash(), sampleRefresh("g", exp))
			return err
		},
		"RevokeRefreshToken": func() error { return s.RevokeRefreshToken(ctx, rt) },
		"RevokeGrant":        func() error { return s.RevokeGrant(ctx, "g", exp) },
		"Insert":             func() error { _, err := s.Insert(ctx, key, time.Minute); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: error %v, want context.Canceled", name, err)
		}
	}
	// Nothing a cancelled call was asked to do happened.
	_, err := s.ConsumeCode(bg, code)
	must(t, err, "ConsumeCode after a cancelled ConsumeCode")
	_, err = s.GetAccessToken(bg, at)
	must(t, err, "GetAccessToken after a cancelled revocation or grant revocation")
	_, err = s.GetRefreshToken(bg, rt)
	must(t, err, "GetRefreshToken after a cancelled rotation or revocation")
	_, err = s.ConsumeCode(bg, fresh)
	wantErr(t, err, store.ErrNotFound, "code saved with a cancelled context")
	ok, err := s.Insert(bg, key, time.Minute)
	must(t, err, "Insert after a cancelled Insert")
	if !ok {
		t.Error("a cancelled Insert recorded its key")
	}
}
