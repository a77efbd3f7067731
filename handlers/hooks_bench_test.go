package handlers

import (
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/store"
)

// The cost of the hooks at the token endpoint: BenchmarkTokenClientCredentials
// with Config.Hooks nil and with every hook set to a function that does
// nothing, the store wrapped by store.Instrument. Compare both with
// BenchmarkRawECDSAVerify of the same run (goal: unset costs nothing
// measurable, set at most 5 % more).

func benchTokenHooks(b *testing.B, hooks *dpop.Hooks) {
	benchTokenEndpoint(b, func(c *Config) {
		c.Hooks = hooks
		c.Store = store.Instrument(c.Store, hooks)
	})
}

// BenchmarkTokenHooksUnset: no hooks.
func BenchmarkTokenHooksUnset(b *testing.B) { benchTokenHooks(b, nil) }

// BenchmarkTokenHooksNoOp: every hook set, doing nothing.
func BenchmarkTokenHooksNoOp(b *testing.B) { benchTokenHooks(b, dpoptest.NoOpHooks()) }
