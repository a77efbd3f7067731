package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/store"
)

// downCache is a replay cache that is down.
type downCache struct{}

func (downCache) Insert(context.Context, dpop.ReplayKey, time.Duration) (bool, error) {
	return false, errors.New("connection refused")
}

// hooksHarness is a harness whose server reports to a Recorder.
func hooksHarness(t *testing.T, edit func(*Config)) (*harness, *dpoptest.Recorder) {
	rec := &dpoptest.Recorder{}
	h := newHarness(t, func(c *Config) {
		c.Hooks = rec.Hooks()
		if edit != nil {
			edit(c)
		}
	})
	return h, rec
}

// confProof sends a client credentials request of the confidential client
// with proof.
func (h *harness) confProof(proof string) response {
	h.t.Helper()
	headers := map[string]string{"basic": confID + ":" + confSecret}
	if proof != "" {
		headers["DPoP"] = proof
	}
	return h.postForm(DefaultPaths.Token, ccForm(), headers)
}

// TestHooksProofChecked: one ProofChecked event per token request whose
// proof was checked, with its final outcome, and with it one TokenIssued or
// one TokenError.
func TestHooksProofChecked(t *testing.T) {
	nonces, err := dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: []byte(strings.Repeat("s", 32))})
	if err != nil {
		t.Fatal(err)
	}
	var replayed string // the proof of Replay, used before
	stale := dpoptest.NewSignerWith(t, dpop.SignerOptions{Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	for _, tc := range []struct {
		name   string
		edit   func(*Config)
		before func(h *harness) // requests whose events are not counted
		send   func(h *harness) response
		reason dpop.RefusalReason // ReasonNone: accepted
		status int
		code   dpop.ErrorCode
	}{
		{name: "Accepted", send: func(h *harness) response { return h.tokenRequest(ccForm()) }, status: 200},
		{name: "Missing", send: func(h *harness) response { return h.confProof("") },
			reason: dpop.ReasonMissing, status: 400, code: dpop.CodeInvalidProof},
		{name: "Malformed", send: func(h *harness) response { return h.confProof("not.a.jwt") },
			reason: dpop.ReasonMalformed, status: 400, code: dpop.CodeInvalidProof},
		{name: "HTU", send: func(h *harness) response { return h.confProof(h.proof("POST", "/other", dpop.ProofOptions{})) },
			reason: dpop.ReasonHTU, status: 400, code: dpop.CodeInvalidProof},
		{name: "HTM", send: func(h *harness) response { return h.confProof(h.proof("GET", DefaultPaths.Token, dpop.ProofOptions{})) },
			reason: dpop.ReasonHTM, status: 400, code: dpop.CodeInvalidProof},
		{name: "Signature", send: func(h *harness) response {
			a, b := h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{}), h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{})
			return h.confProof(a[:strings.LastIndexByte(a, '.')] + b[strings.LastIndexByte(b, '.'):])
		}, reason: dpop.ReasonSignature, status: 400, code: dpop.CodeInvalidProof},
		{name: "IAT", send: func(h *harness) response {
			return h.confProof(proofBy(t, stale, "POST", h.ts.URL+DefaultPaths.Token, dpop.ProofOptions{}))
		}, reason: dpop.ReasonIAT, status: 400, code: dpop.CodeInvalidProof},
		{name: "Algorithm", edit: func(c *Config) { c.DPoP.Algorithms = []string{"ES384"} },
			send:   func(h *harness) response { return h.tokenRequest(ccForm()) },
			reason: dpop.ReasonAlgorithm, status: 400, code: dpop.CodeInvalidProof},
		{name: "Nonce", edit: func(c *Config) { c.DPoP.Nonces = nonces },
			send:   func(h *harness) response { return h.tokenRequest(ccForm()) },
			reason: dpop.ReasonNonce, status: 400, code: dpop.CodeUseNonce},
		{name: "KeyMismatch", send: func(h *harness) response {
			code := h.saveCode(pubID, func(c *store.AuthorizationCode) { c.DPoPJKT = newSigner(t).JKT() })
			return h.publicTokenRequest(codeForm(code), h.signer)
		}, reason: dpop.ReasonKeyMismatch, status: 400, code: dpop.CodeInvalidGrant},
		{name: "Replay", before: func(h *harness) {
			replayed = h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{})
			wantToken(t, h.confProof(replayed), TokenTypeDPoP)
		}, send: func(h *harness) response { return h.confProof(replayed) },
			reason: dpop.ReasonReplay, status: 400, code: dpop.CodeInvalidProof},
		{name: "Quota", edit: func(c *Config) { c.DPoP.Quota = dpop.Quota{PerClient: 1, PerGrant: -1} },
			before: func(h *harness) { wantToken(t, h.tokenRequest(ccForm()), TokenTypeDPoP) },
			send:   func(h *harness) response { return h.tokenRequest(ccForm()) },
			reason: dpop.ReasonCapacity, status: 429, code: dpop.CodeTemporarilyUnavailable},
		{name: "Unavailable", edit: func(c *Config) { c.DPoP.ReplayCache = downCache{} },
			send:   func(h *harness) response { return h.tokenRequest(ccForm()) },
			reason: dpop.ReasonUnavailable, status: 503, code: dpop.CodeServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, rec := hooksHarness(t, tc.edit)
			if tc.before != nil {
				tc.before(h)
			}
			rec.Take()
			r := tc.send(h)
			if r.status != tc.status {
				t.Fatalf("status %d %s, want %d", r.status, r.raw, tc.status)
			}
			ev := rec.Take()
			proofs := ev.Proofs
			if len(proofs) != 1 {
				t.Fatalf("%d proof events %+v, want 1", len(proofs), proofs)
			}
			p := proofs[0]
			accepted := tc.reason == dpop.ReasonNone
			if p.Endpoint != dpop.EndpointToken || p.Accepted != accepted || p.Reason != tc.reason || (p.Err == nil) != accepted {
				t.Errorf("event %+v, want accepted %v reason %q", p, accepted, tc.reason)
			}
			wantClient := confID
			if tc.name == "KeyMismatch" { // the public client redeems a code
				wantClient = pubID
			}
			if p.Client != wantClient {
				t.Errorf("client %q, want %q", p.Client, wantClient)
			}
			if accepted {
				if len(ev.Issued) != 1 || len(ev.TokenErrors) != 0 {
					t.Errorf("issued %+v, errors %+v", ev.Issued, ev.TokenErrors)
				}
				return
			}
			if len(ev.Issued) != 0 || len(ev.TokenErrors) != 1 || ev.TokenErrors[0].Code != tc.code || ev.TokenErrors[0].Status != tc.status {
				t.Errorf("issued %+v, errors %+v, want one %s", ev.Issued, ev.TokenErrors, tc.code)
			}
		})
	}
}

// TestHooksTokenIssued: one TokenIssued per token response, with the grant
// type, the format and the binding; a public client's refresh (rotated)
// counts once.
func TestHooksTokenIssued(t *testing.T) {
	h, rec := hooksHarness(t, func(c *Config) { c.AllowBearer = true })
	var rt string
	for _, tc := range []struct {
		name string
		send func() response
		want dpop.TokenEvent
	}{
		{"ClientCredentials", func() response { return h.tokenRequest(ccForm()) },
			dpop.TokenEvent{GrantType: GrantClientCredentials, Format: FormatOpaque, DPoPBound: true}},
		{"Bearer", func() response {
			return h.postForm(DefaultPaths.Token, ccForm(), map[string]string{"basic": bearerID + ":" + bearerSecret})
		},
			dpop.TokenEvent{GrantType: GrantClientCredentials, Format: FormatOpaque}},
		{"AuthorizationCode", func() response {
			r := h.publicTokenRequest(codeForm(h.saveCode(pubID, nil)), h.signer)
			rt = r.str("refresh_token")
			return r
		}, dpop.TokenEvent{GrantType: GrantAuthorizationCode, Format: FormatOpaque, DPoPBound: true}},
		{"Refresh", func() response {
			return h.publicTokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, h.signer)
		}, dpop.TokenEvent{GrantType: GrantRefreshToken, Format: FormatOpaque, DPoPBound: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := tc.send(); r.status != 200 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			ev := rec.Take()
			if len(ev.Issued) != 1 || ev.Issued[0] != tc.want || len(ev.TokenErrors) != 0 {
				t.Errorf("issued %+v, errors %+v, want %+v", ev.Issued, ev.TokenErrors, tc.want)
			}
		})
	}
	// Three tokens, three events.
	for range 3 {
		wantToken(t, h.tokenRequest(ccForm()), TokenTypeDPoP)
	}
	if ev := rec.Take(); len(ev.Issued) != 3 || len(ev.Proofs) != 3 {
		t.Errorf("3 tokens: %d TokenIssued, %d ProofChecked", len(ev.Issued), len(ev.Proofs))
	}
}

// TestHooksTokenError: one TokenError per error response, with the code,
// the status and the grant type normalised (never the client's value).
func TestHooksTokenError(t *testing.T) {
	h, rec := hooksHarness(t, nil)
	conf := func(form url.Values) response {
		return h.postForm(DefaultPaths.Token, form, map[string]string{"basic": confID + ":" + confSecret,
			"DPoP": h.proof("POST", DefaultPaths.Token, dpop.ProofOptions{})})
	}
	for _, tc := range []struct {
		name  string
		send  func() response
		grant string
		code  dpop.ErrorCode
	}{
		{"NoGrantType", func() response { return conf(url.Values{}) }, "", dpop.CodeInvalidRequest},
		{"UnsupportedGrantType", func() response { return conf(url.Values{"grant_type": {"urn:evil:" + strings.Repeat("x", 40)}}) },
			"unsupported", dpop.CodeUnsupportedGrantType},
		{"InvalidClient", func() response {
			return h.postForm(DefaultPaths.Token, ccForm(), map[string]string{"basic": confID + ":wrong"})
		}, GrantClientCredentials, dpop.CodeInvalidClient},
		{"UnauthorizedClient", func() response {
			return h.postForm(DefaultPaths.Token, codeForm("x"), map[string]string{"basic": bearerID + ":" + bearerSecret})
		}, GrantAuthorizationCode, dpop.CodeUnauthorizedClient},
		{"InvalidGrant", func() response { return conf(codeForm("unknown")) }, GrantAuthorizationCode, dpop.CodeInvalidGrant},
		{"InvalidScope", func() response { return conf(url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}) },
			GrantClientCredentials, dpop.CodeInvalidScope},
		{"InvalidRefresh", func() response { return conf(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}}) },
			GrantRefreshToken, dpop.CodeInvalidGrant},
		{"Method", func() response {
			req, _ := http.NewRequest("GET", h.ts.URL+DefaultPaths.Token, nil)
			return h.do(req)
		}, "", dpop.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.send()
			ev := rec.Take()
			if len(ev.TokenErrors) != 1 || len(ev.Issued) != 0 {
				t.Fatalf("errors %+v, issued %+v, want one error", ev.TokenErrors, ev.Issued)
			}
			e := ev.TokenErrors[0]
			if e.GrantType != tc.grant || e.Code != tc.code || e.Status != r.status || r.str("error") != string(tc.code) {
				t.Errorf("event %+v for %d %s, want grant %q code %s", e, r.status, r.raw, tc.grant, tc.code)
			}
			// The request failed before its proof was checked.
			if len(ev.Proofs) != 0 {
				t.Errorf("proof events %+v", ev.Proofs)
			}
		})
	}
}

// TestHooksStoreCalls: an instrumented store reports each call of a token
// request, in order, once.
func TestHooksStoreCalls(t *testing.T) {
	rec := &dpoptest.Recorder{}
	h := newHarness(t, func(c *Config) { c.Store = store.Instrument(c.Store, rec.Hooks()) })
	rec.Take()
	wantToken(t, h.tokenRequest(ccForm()), TokenTypeDPoP)
	var ops []string
	for _, e := range rec.Take().StoreCalls {
		ops = append(ops, e.Operation)
		if e.Err != nil || e.Duration < 0 {
			t.Errorf("event %+v", e)
		}
	}
	if want := []string{store.OpGetClient, store.OpReplayInsert, store.OpSaveAccessToken}; strings.Join(ops, " ") != strings.Join(want, " ") {
		t.Errorf("store calls %v, want %v", ops, want)
	}
}

// TestHooksCopied: the server keeps a copy of Config.Hooks: changing the
// caller's struct after New changes nothing.
func TestHooksCopied(t *testing.T) {
	rec := &dpoptest.Recorder{}
	hooks := rec.Hooks()
	h := newHarness(t, func(c *Config) { c.Hooks = hooks })
	hooks.TokenIssued = nil
	wantToken(t, h.tokenRequest(ccForm()), TokenTypeDPoP)
	if ev := rec.Take(); len(ev.Issued) != 1 {
		t.Errorf("issued %+v", ev.Issued)
	}
}
