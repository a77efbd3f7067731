package middleware

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// Issue 11: at the resource, a proof is charged to the token's client and to
// the token's grant; a grant or client over its share of the replay cache gets 429
// with Retry-After, and every other token and client is served.
func TestResourceQuota(t *testing.T) {
	r := newRS(t, func(o *Options) { o.DPoP.Quota = dpop.Quota{PerClient: 5, PerGrant: 2} })
	flood := func(token string, n int) (ok, limited int) {
		for range n {
			got := r.get(apiPath, map[string][]string{"Authorization": {"DPoP " + token}, "DPoP": {r.proof(r.signer, "GET", apiPath, token, "")}})
			switch got.status {
			case 200:
				ok++
			case 429:
				limited++
				var body map[string]string
				json.Unmarshal([]byte(got.body), &body)
				if body["error"] != string(dpop.CodeTemporarilyUnavailable) {
					t.Errorf("429 body %s", got.body)
				}
				if s, err := strconv.Atoi(got.header.Get("Retry-After")); err != nil || s < 1 {
					t.Errorf("Retry-After %q", got.header.Get("Retry-After"))
				}
			default:
				t.Fatalf("status %d %s", got.status, got.body)
			}
		}
		return ok, limited
	}
	tokenOf := func(grant string) string {
		tok := randomToken()
		if err := r.store.SaveAccessToken(bg, store.HashToken(tok), &store.AccessToken{
			GrantID: grant, ClientID: "demo", Subject: "alice", Scope: "read", JKT: r.signer.JKT(), Audience: []string{r.ts.URL},
			IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// One grant's token: the grant's budget (2), then 429.
	if ok, limited := flood(r.token, 4); ok != 2 || limited != 2 {
		t.Fatalf("first token: %d served, %d limited; want 2 and 2", ok, limited)
	}
	// A new token of the same grant (a refresh) brings no new budget.
	if ok, limited := flood(tokenOf("g"), 2); ok != 0 || limited != 2 {
		t.Fatalf("refreshed token of the same grant: %d served, %d limited; want 0 and 2", ok, limited)
	}
	// Another grant of the same client: its own budget, within the
	// client's (5, of which 2 are spent).
	if ok, limited := flood(tokenOf("g2"), 3); ok != 2 || limited != 1 {
		t.Fatalf("second grant: %d served, %d limited; want 2 and 1", ok, limited)
	}
	if ok, limited := flood(tokenOf("g3"), 2); ok != 1 || limited != 1 {
		t.Fatalf("third grant: %d served, %d limited; want the client's last 1 and 1", ok, limited)
	}
	// A token of another client is served.
	other := randomToken()
	if err := r.store.SaveAccessToken(bg, store.HashToken(other), &store.AccessToken{
		GrantID: "g2", ClientID: "victim", Subject: "bob", Scope: "read", JKT: r.signer.JKT(), Audience: []string{r.ts.URL},
		IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if ok, limited := flood(other, 2); ok != 2 || limited != 0 {
		t.Fatalf("other client: %d served, %d limited", ok, limited)
	}
}
