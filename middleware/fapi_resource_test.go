package middleware

import (
	"net/http"
	"testing"
	"time"
)

// The resource server rules of the FAPI 2.0 checklist that are not DPoP's
// own (/work/shared/fapi2-checklist.md, "Resource server"), each a case:
// the scheme matched case-insensitively (RFC 9110 §11.1), a proof whose htu
// carries the request's query accepted (RFC 9449 §4.3 compares without
// query and fragment), and a Date header on every answer.
func TestFAPIResourceServer(t *testing.T) {
	r := newRS(t, nil)
	path := apiPath + "?account=42&x=%20y"
	tests := []struct {
		name    string
		headers map[string][]string
		status  int
	}{
		{"Authorization: DPoP <token> with the scheme matched case-insensitively (dpop)",
			map[string][]string{"Authorization": {"dpop " + r.token}, "DPoP": {r.proof(r.signer, "GET", apiPath, r.token, "")}}, http.StatusOK},
		{"Authorization: DPoP <token> with the scheme matched case-insensitively (DPOP)",
			map[string][]string{"Authorization": {"DPOP " + r.token}, "DPoP": {r.proof(r.signer, "GET", apiPath, r.token, "")}}, http.StatusOK},
		{"Authorization: DPoP <token> with the scheme matched case-insensitively (dPoP)",
			map[string][]string{"Authorization": {"dPoP " + r.token}, "DPoP": {r.proof(r.signer, "GET", apiPath, r.token, "")}}, http.StatusOK},
		{"a proof whose htu carries the request's query is accepted",
			map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "GET", path, r.token, "")}}, http.StatusOK},
		{"a proof whose htu carries another query is accepted too (htu has no query)",
			map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "GET", apiPath+"?other=1", r.token, "")}}, http.StatusOK},
		{"a Date header on a refusal", map[string][]string{"Authorization": {"DPoP " + r.token}}, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := r.get(path, tc.headers)
			if got.status != tc.status {
				t.Fatalf("got %d %s, want %d", got.status, got.body, tc.status)
			}
			d, err := http.ParseTime(got.header.Get("Date"))
			if err != nil || time.Since(d) > time.Minute || time.Until(d) > time.Minute {
				t.Errorf("Date %q (%v): want the current time", got.header.Get("Date"), err)
			}
		})
	}
}
