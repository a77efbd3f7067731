package handlers

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// Introspection behaviour that the mutation run found untested: the order of
// the lookups, and what the access token lookup does with each answer of
// the store.

// lookupOrderCases are the token_type_hint cases of introspection and
// revocation: the token is looked up as the hinted kind first (access token
// first with no hint or an unknown one). The tests fail the other kind's
// lookups, so that a second lookup shows.
var lookupOrderCases = []struct {
	name, hint string
	refresh    bool // the token is a refresh token (else an access token)
}{
	{"access token, no hint", "", false},
	{"access token, access hint", "access_token", false},
	{"access token, unknown hint", "id_token", false},
	{"refresh token, refresh hint", "refresh_token", true},
}

// Once found as the hinted kind, the token is not looked up as the other:
// with the other kind's lookups failing, the token is described.
func TestIntrospectionGapLookupOrder(t *testing.T) {
	for _, tc := range lookupOrderCases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.Store = brokenLookupStore{Memory: c.Store.(*store.Memory), access: tc.refresh, refresh: !tc.refresh}
			})
			at := rvAccess(confID, rvGrant, h.signer.JKT())
			rt := rvRefresh(pubID, rvGrant, h.signer.JKT())
			rvSave(t, h.store, "at-1", at)
			rvSave(t, h.store, "rt-1", rt)
			form := url.Values{"token": {"at-1"}}
			want := ixDescription(h, at.ClientID, at.Subject, at.Scope, at.JKT, TokenTypeDPoP, at.IssuedAt, at.ExpiresAt)
			if tc.refresh {
				form.Set("token", "rt-1")
				want = ixDescription(h, rt.ClientID, rt.Subject, rt.Scope, rt.JKT, "", rt.IssuedAt, rt.ExpiresAt)
			}
			if tc.hint != "" {
				form.Set("token_type_hint", tc.hint)
			}
			ixWantActive(t, h.ixPost(form, rvConfBasic), want)
		})
	}
}

// The access token lookup describes a record only when the store vouches
// for it (no error): a record that comes with ErrRevoked or ErrExpired is
// inactive, one that comes with a store failure is 503, and a store
// answering neither a record nor an error has no such token.
func TestIntrospectionGapAccessLookupAnswers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		withRecord bool
		err        error
		status     int // 200: {"active":false}
	}{
		{"no record, no error", false, nil, http.StatusOK},
		{"revoked with the record", true, store.ErrRevoked, http.StatusOK},
		{"expired with the record", true, store.ErrExpired, http.StatusOK},
		{"not found with the record", true, store.ErrNotFound, http.StatusOK},
		{"store failure with the record", true, errDown, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, gs := gapHarness(t, nil, nil)
			rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, h.signer.JKT()))
			gs.set(func(k *gapHooks) {
				k.getAccess = func(ctx context.Context, hash store.TokenHash) (*store.AccessToken, error) {
					rec, err := gs.Memory.GetAccessToken(ctx, hash)
					if err != nil {
						t.Errorf("GetAccessToken: %v", err)
					}
					if !tc.withRecord {
						rec = nil
					}
					return rec, tc.err
				}
			})
			for _, hint := range []string{"", "refresh_token"} {
				form := url.Values{"token": {"at-1"}}
				if hint != "" {
					form.Set("token_type_hint", hint)
				}
				r := h.ixPost(form, rvConfBasic)
				if tc.status == http.StatusOK {
					ixWantInactive(t, r)
					continue
				}
				wantError(t, r, tc.status, dpop.CodeServerError)
				if _, ok := r.body["active"]; ok {
					t.Errorf("a store failure answered as an introspection: %s", r.raw)
				}
			}
		})
	}
}
