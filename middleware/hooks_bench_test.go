package middleware

import (
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/store"
)

// The cost of the hooks at a resource: BenchmarkMiddlewareOpaque's request
// with Options.Hooks nil and with every hook set to a function that does
// nothing, the store wrapped by store.Instrument. Compare both with
// BenchmarkRawECDSAVerify of the same run (goal: unset costs nothing
// measurable, set at most 5 % more).

func benchMiddlewareHooks(b *testing.B, hooks *dpop.Hooks) {
	m, err := store.NewMemory(store.MemoryOptions{MaxReplayEntries: 2*b.N + 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	signer := newSigner(b)
	token := randomToken()
	if err := m.SaveAccessToken(bg, store.HashToken(token), &store.AccessToken{ClientID: "demo", Subject: "alice", Scope: "read",
		JKT: signer.JKT(), Audience: []string{benchResource}, IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	s := store.Instrument(m, hooks)
	benchMiddlewareWith(b, Options{Validator: StoreValidator{Store: s}, DPoP: dpop.VerifierOptions{ReplayCache: s}, Hooks: hooks}, signer, token)
}

// BenchmarkMiddlewareHooksUnset: no hooks.
func BenchmarkMiddlewareHooksUnset(b *testing.B) { benchMiddlewareHooks(b, nil) }

// BenchmarkMiddlewareHooksNoOp: every hook set, doing nothing.
func BenchmarkMiddlewareHooksNoOp(b *testing.B) { benchMiddlewareHooks(b, dpoptest.NoOpHooks()) }
