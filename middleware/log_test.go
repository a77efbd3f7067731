package middleware

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// Issue 12 (diagnostics): an htu mismatch at the resource is logged with the
// expected and the received URL; the response stays terse.
func TestResourceRefusalLog(t *testing.T) {
	var buf bytes.Buffer
	r := newRS(t, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&buf, nil)) })
	got := r.get(apiPath, map[string][]string{"Authorization": {"DPoP " + r.token}, "DPoP": {r.proof(r.signer, "GET", "/elsewhere", r.token, "")}})
	if got.status != 401 || strings.Contains(got.body+got.header.Get("WWW-Authenticate"), "/elsewhere") {
		t.Fatalf("got %d %s %q", got.status, got.body, got.header.Get("WWW-Authenticate"))
	}
	log := buf.String()
	for _, want := range []string{"htu_expected=" + r.ts.URL + apiPath, "htu_received=" + r.ts.URL + "/elsewhere"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}
