package handlers

import (
	"net/http"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
)

// A DPoP proof at the PAR endpoint (RFC 9449 §10.1) is reported to
// Config.Hooks once, with EndpointPAR: accepted, or refused with its reason.
func TestPARProofEvents(t *testing.T) {
	var rec dpoptest.Recorder
	h := newPARHarness(t, func(c *Config) { c.Hooks = rec.Hooks() })
	basic := confID + ":" + confSecret
	for _, tc := range []struct {
		name   string
		proof  string
		status int
		reason dpop.RefusalReason
	}{
		{"accepted", h.parProof(h.signer), http.StatusCreated, dpop.ReasonNone},
		{"refused: htu of the token endpoint", proofBy(t, h.signer, "POST", h.ts.URL+DefaultPaths.Token, dpop.ProofOptions{}), http.StatusBadRequest, dpop.ReasonHTU},
		{"refused: missing for a DPoP-bound client without dpop_jkt", "", http.StatusBadRequest, dpop.ReasonMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec.Take()
			headers := map[string]string{"basic": basic}
			if tc.proof != "" {
				headers["DPoP"] = tc.proof
			}
			if r := h.push(parParams(confID), headers); r.status != tc.status {
				t.Fatalf("got %d %s, want %d", r.status, r.raw, tc.status)
			}
			ev := rec.Take().Proofs
			if len(ev) != 1 || ev[0].Endpoint != dpop.EndpointPAR || ev[0].Accepted != (tc.reason == dpop.ReasonNone) || ev[0].Reason != tc.reason || ev[0].Client != confID {
				t.Fatalf("events %+v, want one %s event, reason %q", ev, dpop.EndpointPAR, tc.reason)
			}
		})
	}
}
