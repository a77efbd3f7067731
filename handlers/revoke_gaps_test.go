package handlers

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// Revocation behaviour that the mutation run found untested: the order of
// the lookups (the hinted kind first, and no second lookup once the token
// is found), store failures while deleting, and what the refresh token
// lookup does with each answer of the store.

// Once found as the hinted kind (lookupOrderCases), the token is not looked
// up as the other: with the other kind's lookups failing, it is revoked.
func TestRevocationGapLookupOrder(t *testing.T) {
	for _, tc := range lookupOrderCases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.Store = brokenLookupStore{Memory: c.Store.(*store.Memory), access: tc.refresh, refresh: !tc.refresh}
			})
			rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, ""))
			if tc.refresh {
				rvSave(t, h.store, "rt-1", rvRefresh(confID, rvGrant, ""))
			}
			token := "at-1"
			if tc.refresh {
				token = "rt-1"
			}
			form := url.Values{"token": {token}}
			if tc.hint != "" {
				form.Set("token_type_hint", tc.hint)
			}
			rvWantOK(t, h.rvPost(form, rvConfBasic))
			if tc.refresh {
				// The grant is revoked, then the token deleted.
				rvWantGone(t, rvAccessErr(h, "at-1"), store.ErrRevoked)
				rvWantGone(t, rvRefreshErr(h, "rt-1"), store.ErrNotFound)
			} else {
				rvWantGone(t, rvAccessErr(h, "at-1"), store.ErrNotFound)
			}
		})
	}
}

// A store failure while deleting the token is 503 server_error, never the
// 200 that tells the client its token is dead. An access token stays as it
// was; for a refresh token the grant was revoked first, so that its access
// tokens are dead anyway.
func TestRevocationGapDeleteFailure(t *testing.T) {
	t.Run("access token", func(t *testing.T) {
		h, gs := gapHarness(t, func(_ *gapStore, k *gapHooks) {
			k.revokeAccess = func(context.Context, store.TokenHash) error { return errDown }
		}, nil)
		rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, ""))
		wantError(t, h.rvPost(url.Values{"token": {"at-1"}}, rvConfBasic), http.StatusServiceUnavailable, dpop.CodeServerError)
		if n := gs.called("RevokeAccessToken"); n != 1 {
			t.Errorf("%d deletions tried, want 1", n)
		}
		rvWantLive(t, rvAccessErr(h, "at-1"))
		// Once the store is back, the client's retry revokes the token.
		gs.set(func(k *gapHooks) { k.revokeAccess = nil })
		rvWantOK(t, h.rvPost(url.Values{"token": {"at-1"}}, rvConfBasic))
		rvWantGone(t, rvAccessErr(h, "at-1"), store.ErrNotFound)
	})
	t.Run("refresh token", func(t *testing.T) {
		h, gs := gapHarness(t, func(_ *gapStore, k *gapHooks) {
			k.revokeRefresh = func(context.Context, store.TokenHash) error { return errDown }
		}, nil)
		rvSave(t, h.store, "rt-1", rvRefresh(confID, rvGrant, ""))
		rvSave(t, h.store, "at-1", rvAccess(confID, rvGrant, ""))
		wantError(t, h.rvPost(url.Values{"token": {"rt-1"}, "token_type_hint": {"refresh_token"}}, rvConfBasic),
			http.StatusServiceUnavailable, dpop.CodeServerError)
		if n := gs.called("RevokeRefreshToken"); n != 1 {
			t.Errorf("%d deletions tried, want 1", n)
		}
		rvWantGone(t, rvAccessErr(h, "at-1"), store.ErrRevoked)
		rvWantGone(t, rvRefreshErr(h, "rt-1"), store.ErrRevoked)
	})
}

// The refresh token lookup acts on a record only when the store vouches for
// it (no error, or ErrConsumed for a rotated token): a store failure is 503
// whatever record comes with it, and nothing is revoked; a store answering
// neither a record nor an error has no such token (200).
func TestRevocationGapRefreshLookupAnswers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		withRecord bool
		client     string // the record's client
		err        error
		status     int
		code       dpop.ErrorCode
	}{
		{"no record, no error", false, confID, nil, http.StatusOK, ""},
		{"store failure with the record", true, confID, errDown, http.StatusServiceUnavailable, dpop.CodeServerError},
		{"store failure with another client's record", true, bearerID, errDown, http.StatusServiceUnavailable, dpop.CodeServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, gs := gapHarness(t, nil, nil)
			rvSave(t, h.store, "rt-1", rvRefresh(tc.client, rvGrant, ""))
			rvSave(t, h.store, "at-1", rvAccess(tc.client, rvGrant, ""))
			gs.set(func(k *gapHooks) {
				k.getRefresh = func(ctx context.Context, hash store.TokenHash) (*store.RefreshToken, error) {
					rec, err := gs.Memory.GetRefreshToken(ctx, hash)
					if err != nil {
						t.Errorf("GetRefreshToken: %v", err)
					}
					if !tc.withRecord {
						rec = nil
					}
					return rec, tc.err
				}
			})
			r := h.rvPost(url.Values{"token": {"rt-1"}, "token_type_hint": {"refresh_token"}}, rvConfBasic)
			if tc.status == http.StatusOK {
				rvWantOK(t, r)
			} else {
				wantError(t, r, tc.status, tc.code)
			}
			for _, m := range []string{"RevokeGrant", "RevokeRefreshToken", "RevokeAccessToken"} {
				if n := gs.called(m); n != 0 {
					t.Errorf("%s called %d times", m, n)
				}
			}
			rvWantLive(t, rvRefreshErr(h, "rt-1"))
			rvWantLive(t, rvAccessErr(h, "at-1"))
		})
	}
}
