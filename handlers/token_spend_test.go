package handlers

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// spendHarness is a harness whose store counts what requests spend
// (gapStore.spent).
func spendHarness(t *testing.T, edit func(*Config)) (*harness, *gapStore) {
	return gapHarness(t, nil, edit)
}

func confHeaders(h *harness, signer *dpop.Signer) map[string]string {
	return map[string]string{"basic": confID + ":" + confSecret, "DPoP": proofBy(h.t, signer, "POST", h.ts.URL+DefaultPaths.Token, dpop.ProofOptions{})}
}

// Issue 11: the token endpoint checks the client and the grant before the
// proof takes a place in the replay cache, and redeems a code only after
// everything else passed. A refused request spends nothing: no replay entry,
// no redemption, no revocation; the code stays redeemable by its owner.
func TestTokenRefusedRequestsSpendNothing(t *testing.T) {
	const unknownCode = "the code is invalid, expired or already used"
	h, sc := spendHarness(t, nil)
	other := newSigner(t)
	for _, tc := range []struct {
		name  string
		owner string // the code's client
		code  func(c *store.AuthorizationCode)
		send  func(code string) response
		err   dpop.ErrorCode
		desc  string
	}{
		{name: "anonymous: public client, made-up code, valid proof",
			send: func(string) response { return h.publicTokenRequest(codeForm(randomToken()), other) },
			err:  dpop.CodeInvalidGrant, desc: unknownCode},
		{name: "confidential client's code under the public client id", owner: confID,
			send: func(code string) response { return h.publicTokenRequest(codeForm(code), other) },
			err:  dpop.CodeInvalidGrant, desc: unknownCode},
		{name: "wrong PKCE verifier", owner: pubID,
			send: func(code string) response {
				f := codeForm(code)
				f.Set("code_verifier", testVerifier[:42]+"x")
				return h.publicTokenRequest(f, h.signer)
			}, err: dpop.CodeInvalidGrant},
		{name: "wrong redirect_uri", owner: pubID,
			send: func(code string) response {
				f := codeForm(code)
				f.Set("redirect_uri", "http://127.0.0.1:8765/callback")
				return h.publicTokenRequest(f, h.signer)
			}, err: dpop.CodeInvalidGrant},
		{name: "dpop_jkt bound, proof by another key", owner: pubID, code: func(c *store.AuthorizationCode) { c.DPoPJKT = h.signer.JKT() },
			send: func(code string) response { return h.publicTokenRequest(codeForm(code), other) },
			err:  dpop.CodeInvalidGrant},
		{name: "invalid proof (other htu)", owner: pubID,
			send: func(code string) response {
				f := codeForm(code)
				f.Set("client_id", pubID)
				return h.postForm(DefaultPaths.Token, f, map[string]string{"DPoP": proofBy(t, h.signer, "POST", h.ts.URL+"/elsewhere", dpop.ProofOptions{})})
			}, err: dpop.CodeInvalidProof},
		{name: "no proof", owner: pubID,
			send: func(code string) response { return h.publicTokenRequest(codeForm(code), nil) },
			err:  dpop.CodeInvalidProof},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := ""
			if tc.owner != "" {
				code = h.saveCode(tc.owner, tc.code)
			}
			before := sc.spent()
			r := tc.send(code)
			wantError(t, r, 400, tc.err)
			if tc.desc != "" && r.str("error_description") != tc.desc {
				t.Errorf("description %q, want the unknown code's %q", r.str("error_description"), tc.desc)
			}
			if n := sc.spent() - before; n != 0 {
				t.Errorf("the refused request spent %d replay entries, redemptions or revocations", n)
			}
			if code == "" {
				return
			}
			// The owner still redeems the code.
			if tc.owner == confID {
				wantToken(t, h.postForm(DefaultPaths.Token, codeForm(code), confHeaders(h, h.signer)), TokenTypeDPoP)
			} else {
				wantToken(t, h.publicTokenRequest(codeForm(code), h.signer), TokenTypeDPoP)
			}
		})
	}
	refreshForm := func(rt string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	}
	t.Run("refresh token of another client refused like an unknown one", func(t *testing.T) {
		first := wantToken(t, h.postForm(DefaultPaths.Token, codeForm(h.saveCode(confID, nil)), confHeaders(h, h.signer)), TokenTypeDPoP)
		unknown := h.publicTokenRequest(refreshForm(randomToken()), h.signer)
		before := sc.spent()
		r := h.publicTokenRequest(refreshForm(first.str("refresh_token")), h.signer)
		wantError(t, r, 400, dpop.CodeInvalidGrant)
		if r.str("error_description") != unknown.str("error_description") {
			t.Errorf("description %q differs from an unknown token's %q", r.str("error_description"), unknown.str("error_description"))
		}
		if n := sc.spent() - before; n != 0 {
			t.Errorf("spent %d", n)
		}
		wantToken(t, h.postForm(DefaultPaths.Token, refreshForm(first.str("refresh_token")), confHeaders(h, h.signer)), TokenTypeDPoP)
	})
	t.Run("bound refresh token, proof by another key", func(t *testing.T) {
		first := wantToken(t, h.publicTokenRequest(codeForm(h.saveCode(pubID, nil)), h.signer), TokenTypeDPoP)
		before := sc.spent()
		wantError(t, h.publicTokenRequest(refreshForm(first.str("refresh_token")), other), 400, dpop.CodeInvalidGrant)
		if n := sc.spent() - before; n != 0 {
			t.Errorf("spent %d", n)
		}
		wantToken(t, h.publicTokenRequest(refreshForm(first.str("refresh_token")), h.signer), TokenTypeDPoP)
	})
	t.Run("a used code presented by another client revokes nothing", func(t *testing.T) {
		code := h.saveCode(confID, nil)
		tok := wantToken(t, h.postForm(DefaultPaths.Token, codeForm(code), confHeaders(h, h.signer)), TokenTypeDPoP)
		before := sc.called("RevokeGrant")
		r := h.publicTokenRequest(codeForm(code), other)
		wantError(t, r, 400, dpop.CodeInvalidGrant)
		if r.str("error_description") != unknownCode {
			t.Errorf("description %q", r.str("error_description"))
		}
		if sc.called("RevokeGrant") != before {
			t.Error("another client's presentation revoked the grant")
		}
		if _, err := h.accessRecord(tok.str("access_token")); err != nil {
			t.Errorf("the owner's token stopped working: %v", err)
		}
		// The owner using it twice still revokes (RFC 6749 §4.1.2).
		wantError(t, h.postForm(DefaultPaths.Token, codeForm(code), confHeaders(h, h.signer)), 400, dpop.CodeInvalidGrant)
		if _, err := h.accessRecord(tok.str("access_token")); err == nil {
			t.Error("the owner's second redemption did not revoke the grant")
		}
	})
}

// Issue 11: each client and each grant has a share of the replay cache; a
// party over its share gets 429 with Retry-After, the others are served.
func TestTokenQuota(t *testing.T) {
	t.Run("per client", func(t *testing.T) {
		h, sc := spendHarness(t, func(c *Config) { c.DPoP.Quota = dpop.Quota{PerClient: 3, PerGrant: -1} })
		cc := url.Values{"grant_type": {"client_credentials"}}
		for range 3 {
			wantToken(t, h.postForm(DefaultPaths.Token, cc, confHeaders(h, h.signer)), TokenTypeDPoP)
		}
		inserts := sc.called("Insert")
		r := h.postForm(DefaultPaths.Token, cc, confHeaders(h, h.signer))
		wantError(t, r, 429, dpop.CodeTemporarilyUnavailable)
		if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 71 {
			t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
		}
		if sc.called("Insert") != inserts {
			t.Error("a request over its quota took a replay entry")
		}
		// Another client is served.
		wantToken(t, h.postForm(DefaultPaths.Token, cc, map[string]string{"basic": bearerID + ":" + bearerSecret,
			"DPoP": proofBy(t, h.signer, "POST", h.ts.URL+DefaultPaths.Token, dpop.ProofOptions{})}), TokenTypeDPoP)
		// A code redemption over the quota does not redeem the code.
		code := h.saveCode(confID, nil)
		consumes := sc.called("ConsumeCode")
		wantError(t, h.postForm(DefaultPaths.Token, codeForm(code), confHeaders(h, h.signer)), 429, dpop.CodeTemporarilyUnavailable)
		if sc.called("ConsumeCode") != consumes {
			t.Error("the code was redeemed by a request over its quota")
		}
	})
	t.Run("per grant: one refresh chain, other users served", func(t *testing.T) {
		h, _ := spendHarness(t, func(c *Config) { c.DPoP.Quota = dpop.Quota{PerGrant: 3} })
		rt := wantToken(t, h.publicTokenRequest(codeForm(h.saveCode(pubID, nil)), h.signer), TokenTypeDPoP).str("refresh_token")
		form := func() url.Values { return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}} }
		for range 2 { // the code redemption took the grant's first entry
			rt = wantToken(t, h.publicTokenRequest(form(), h.signer), TokenTypeDPoP).str("refresh_token")
		}
		wantError(t, h.publicTokenRequest(form(), h.signer), 429, dpop.CodeTemporarilyUnavailable)
		// The refused refresh kept the chain: the token is still live.
		if _, err := h.store.GetRefreshToken(ctx, store.HashToken(rt)); err != nil {
			t.Fatalf("refresh token after a 429: %v", err)
		}
		// Another user of the same public client is served.
		wantToken(t, h.publicTokenRequest(codeForm(h.saveCode(pubID, nil)), newSigner(t)), TokenTypeDPoP)
	})
}

// shareFull is a store in which the requesting client holds its share of
// the access token table.
type shareFull struct{ *store.Memory }

func (shareFull) SaveAccessToken(context.Context, store.TokenHash, *store.AccessToken) error {
	return store.ErrShareFull
}

// Issue 11: a client whose share of a bounded store is full gets 429 with
// Retry-After, not the 503 of a store failure.
func TestTokenClientShareFull(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Store = shareFull{c.Store.(*store.Memory)} })
	r := h.postForm(DefaultPaths.Token, url.Values{"grant_type": {"client_credentials"}}, confHeaders(h, h.signer))
	wantError(t, r, 429, dpop.CodeTemporarilyUnavailable)
	if r.header.Get("Retry-After") != "60" {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
}

// Issue 12 (diagnostics): a refused token request is logged with the client
// id and the grant type, and an htu mismatch with the expected and the
// received URL; the response stays terse.
func TestTokenRefusalLog(t *testing.T) {
	var buf bytes.Buffer
	h := newHarness(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&buf, nil)) })
	form := url.Values{"grant_type": {"client_credentials"}}
	r := h.postForm(DefaultPaths.Token, form, map[string]string{"basic": confID + ":" + confSecret,
		"DPoP": proofBy(t, h.signer, "POST", h.ts.URL+"/elsewhere", dpop.ProofOptions{})})
	wantError(t, r, 400, dpop.CodeInvalidProof)
	if strings.Contains(r.raw, "/elsewhere") {
		t.Errorf("the response echoes the htu: %s", r.raw)
	}
	log := buf.String()
	for _, want := range []string{"client_id=" + confID, "grant_type=client_credentials",
		"htu_expected=" + h.ts.URL + DefaultPaths.Token, "htu_received=" + h.ts.URL + "/elsewhere"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	buf.Reset()
	form.Set("grant_type", "urn:evil:\n")
	h.postForm(DefaultPaths.Token, form, map[string]string{"basic": confID + ":" + confSecret})
	if log := buf.String(); !strings.Contains(log, "grant_type=unsupported") || strings.Contains(log, "evil") {
		t.Errorf("an unknown grant type is logged as the client sent it:\n%s", log)
	}
}
