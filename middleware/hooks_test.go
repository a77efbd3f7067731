package middleware

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
)

// downCache is a replay cache that is down.
type downCache struct{}

func (downCache) Insert(context.Context, dpop.ReplayKey, time.Duration) (bool, error) {
	return false, errors.New("connection refused")
}

// TestHooks: per request, one ProofChecked when the proof was checked
// (with the final outcome) and one ResourceRefused when the request was
// refused, with the proof's reason when the proof was at fault.
func TestHooks(t *testing.T) {
	nonces, err := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: []byte(strings.Repeat("s", 32))})
	if err != nil {
		t.Fatal(err)
	}
	other := newSigner(t)
	var replayed map[string][]string // the headers of Replay, used before
	for _, tc := range []struct {
		name    string
		edit    func(*Options)
		before  func(r *rs)
		headers func(r *rs) map[string][]string
		checked bool // the proof was checked
		reason  dpop.RefusalReason
		status  int
		code    dpop.ErrorCode
	}{
		{name: "Accepted", headers: func(r *rs) map[string][]string { return r.dpopHeaders(apiPath) }, checked: true, status: 200},
		{name: "NoCredentials", headers: func(*rs) map[string][]string { return nil }, status: 401},
		{name: "InvalidToken", headers: func(r *rs) map[string][]string {
			return map[string][]string{"Authorization": {"DPoP unknown"}, "DPoP": {r.proof(r.signer, "GET", apiPath, "unknown", "")}}
		}, status: 401, code: dpop.CodeInvalidToken},
		{name: "MissingProof", headers: func(r *rs) map[string][]string {
			return map[string][]string{"Authorization": {"DPoP " + r.token}}
		}, checked: true, reason: dpop.ReasonMissing, status: 401, code: dpop.CodeInvalidProof},
		{name: "HTU", headers: func(r *rs) map[string][]string {
			return map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "GET", "/api/other", r.token, "")}}
		}, checked: true, reason: dpop.ReasonHTU, status: 401, code: dpop.CodeInvalidProof},
		{name: "HTM", headers: func(r *rs) map[string][]string {
			return map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "POST", apiPath, r.token, "")}}
		}, checked: true, reason: dpop.ReasonHTM, status: 401, code: dpop.CodeInvalidProof},
		{name: "ATH", headers: func(r *rs) map[string][]string {
			return map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "GET", apiPath, "another-token", "")}}
		}, checked: true, reason: dpop.ReasonATH, status: 401, code: dpop.CodeInvalidProof},
		{name: "KeyMismatch", headers: func(r *rs) map[string][]string {
			return map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(other, "GET", apiPath, r.token, "")}}
		}, checked: true, reason: dpop.ReasonKeyMismatch, status: 401, code: dpop.CodeInvalidToken},
		{name: "Replay", before: func(r *rs) {
			replayed = r.dpopHeaders(apiPath)
			if got := r.get(apiPath, replayed); got.status != 200 {
				t.Fatalf("first use: %d %s", got.status, got.body)
			}
		}, headers: func(*rs) map[string][]string { return replayed },
			checked: true, reason: dpop.ReasonReplay, status: 401, code: dpop.CodeInvalidProof},
		{name: "Nonce", edit: func(o *Options) { o.DPoP.Nonces = nonces },
			headers: func(r *rs) map[string][]string { return r.dpopHeaders(apiPath) },
			checked: true, reason: dpop.ReasonNonce, status: 401, code: dpop.CodeUseNonce},
		{name: "Quota", edit: func(o *Options) { o.DPoP.Quota = dpop.Quota{PerClient: 1, PerGrant: -1} },
			before: func(r *rs) {
				if got := r.get(apiPath, r.dpopHeaders(apiPath)); got.status != 200 {
					t.Fatalf("first request: %d %s", got.status, got.body)
				}
			}, headers: func(r *rs) map[string][]string { return r.dpopHeaders(apiPath) },
			checked: true, reason: dpop.ReasonCapacity, status: 429, code: dpop.CodeTemporarilyUnavailable},
		{name: "Unavailable", edit: func(o *Options) { o.DPoP.ReplayCache = downCache{} },
			headers: func(r *rs) map[string][]string { return r.dpopHeaders(apiPath) },
			checked: true, reason: dpop.ReasonUnavailable, status: 503, code: dpop.CodeServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &dpoptest.Recorder{}
			r := newRS(t, func(o *Options) {
				o.Hooks = rec.Hooks()
				if tc.edit != nil {
					tc.edit(o)
				}
			})
			if tc.before != nil {
				tc.before(r)
			}
			rec.Take()
			got := r.get(apiPath, tc.headers(r))
			if got.status != tc.status {
				t.Fatalf("status %d %s, want %d", got.status, got.body, tc.status)
			}
			ev := rec.Take()
			accepted := tc.status == 200
			switch {
			case !tc.checked && len(ev.Proofs) != 0:
				t.Errorf("proof events %+v, want none", ev.Proofs)
			case tc.checked && len(ev.Proofs) != 1:
				t.Errorf("proof events %+v, want one", ev.Proofs)
			case tc.checked:
				p := ev.Proofs[0]
				if p.Endpoint != dpop.EndpointResource || p.Accepted != accepted || p.Reason != tc.reason || p.Client != "demo" || (p.Err == nil) != accepted {
					t.Errorf("event %+v, want accepted %v reason %q", p, accepted, tc.reason)
				}
			}
			if accepted {
				if len(ev.Refusals) != 0 {
					t.Errorf("refusals %+v", ev.Refusals)
				}
				return
			}
			want := dpop.ResourceEvent{Reason: tc.reason, Code: tc.code, Status: tc.status}
			if len(ev.Refusals) != 1 || ev.Refusals[0] != want {
				t.Errorf("refusals %+v, want %+v", ev.Refusals, want)
			}
		})
	}
}
