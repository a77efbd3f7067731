package handlers

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// RFC 7662 §2.1, §4 with RFC 8707: only clients registered to introspect
// may, and each sees only the tokens meant for one of its resources; the
// answer's aud holds no more than the resources they share.
func TestIntrospectionAudience(t *testing.T) {
	const (
		rsID     = "rs-billing"
		rsSecret = "rs-billing-secret-0123456789"
		rsBasic  = rsID + ":" + rsSecret
	)
	tests := []struct {
		name     string
		basic    string
		audience []string
		refresh  bool
		status   int      // 0: 200
		wantAud  []string // nil: inactive
	}{
		{"resource server, token for it", rsBasic, []string{resOther}, false, 0, []string{resOther}},
		{"resource server, token for it and another: aud shows only its own", rsBasic, []string{rvAudience, resOther}, false, 0, []string{resOther}},
		{"resource server, token for another", rsBasic, []string{rvAudience}, false, 0, nil},
		{"resource server, token without audience", rsBasic, nil, false, 0, nil},
		{"resource server, refresh token for another", rsBasic, []string{rvAudience}, true, 0, nil},
		{"resource server, refresh token for it", rsBasic, []string{resOther}, true, 0, []string{resOther}},
		{"client not registered to introspect", plainID + ":" + plainSecret, []string{resOther}, false, http.StatusForbidden, nil},
		{"public client", pubID + ":", []string{resOther}, false, http.StatusUnauthorized, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := resHarness(t, nil)
			if err := h.store.SaveClient(ctx, &store.Client{ID: rsID, SecretHash: store.HashSecret(rsSecret),
				Resources: []string{resOther}, Introspect: true}); err != nil {
				t.Fatal(err)
			}
			var err error
			if tc.refresh {
				rec := rvRefresh(confID, rvGrant, "")
				rec.Audience = tc.audience
				err = h.store.SaveRefreshToken(ctx, store.HashToken("tok"), rec)
			} else {
				rec := rvAccess(confID, rvGrant, "")
				rec.Audience = tc.audience
				err = h.store.SaveAccessToken(ctx, store.HashToken("tok"), rec)
			}
			if err != nil {
				t.Fatal(err)
			}
			r := h.ixPost(url.Values{"token": {"tok"}}, tc.basic)
			switch {
			case tc.status == http.StatusForbidden:
				wantError(t, r, tc.status, dpop.CodeUnauthorizedClient)
			case tc.status != 0:
				wantError(t, r, tc.status, dpop.CodeInvalidClient)
			case tc.wantAud == nil:
				ixWantInactive(t, r)
			default:
				if r.status != http.StatusOK || r.body["active"] != true {
					t.Fatalf("got %d %s, want active", r.status, r.raw)
				}
				var want []any
				for _, a := range tc.wantAud {
					want = append(want, a)
				}
				if !reflect.DeepEqual(r.body["aud"], want) {
					t.Errorf("aud %v, want %v", r.body["aud"], want)
				}
			}
		})
	}
}
