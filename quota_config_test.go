package dpop

import (
	"fmt"
	"testing"
)

// A proof is charged only to the parties its Request names, each against
// its own budget: a grant named without a client is still charged to the
// grant, and a party that is not named is never charged (in particular not
// to a shared bucket for "no client" or "no grant").
func TestQuotaChargesOnlyNamedParties(t *testing.T) {
	es := newTestKey(t, ES256)
	t.Run("a grant without a client is charged to the grant", func(t *testing.T) {
		v, _ := quotaVerifier(t, Quota{PerClient: -1, PerGrant: 2})
		for i := range 2 {
			if _, err := v.Verify(bg, charged(es.proof(t, nil), "", "g")); err != nil {
				t.Fatalf("proof %d: %v", i, err)
			}
		}
		p, err := v.Verify(bg, charged(es.proof(t, nil), "", "g"))
		wantQuota(t, p, err)
		if _, err := v.Verify(bg, charged(es.proof(t, nil), "", "h")); err != nil {
			t.Fatalf("another grant refused: %v", err)
		}
	})
	t.Run("grants without a client share no client budget", func(t *testing.T) {
		v, _ := quotaVerifier(t, Quota{PerClient: 2, PerGrant: 10})
		for i := range 5 {
			if _, err := v.Verify(bg, charged(es.proof(t, nil), "", fmt.Sprintf("g%d", i))); err != nil {
				t.Fatalf("grant %d: %v", i, err)
			}
		}
	})
	t.Run("a client without a grant is not charged to a grant budget", func(t *testing.T) {
		v, _ := quotaVerifier(t, Quota{PerClient: 10, PerGrant: 2})
		for i := range 5 {
			if _, err := v.Verify(bg, charged(es.proof(t, nil), "c", "")); err != nil {
				t.Fatalf("proof %d: %v", i, err)
			}
		}
	})
}
