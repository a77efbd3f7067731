package main

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
)

// TestReferenceReplay runs the reference with -reference-replay on each
// shared store (CI sets the variables and refuses skips): a verified proof
// is recorded and accepted once, its replay refused, at both routes; a
// proof that fails verification is refused for that; a store that fails
// gives 503, never an answer that accepts.
func TestReferenceReplay(t *testing.T) {
	for _, st := range isolationStores {
		if st.env == "" {
			continue
		}
		t.Run(st.kind, func(t *testing.T) {
			u := os.Getenv(st.env)
			if u == "" {
				t.Skipf("%s is not set (CI sets it; see the README)", st.env)
			}
			cfg, err := parseFlags([]string{"-serve-reference", "-reference-replay", "-store", st.kind, st.flag, u}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			replay, err := openRefReplay(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewUnstartedServer(nil)
			ts.Config.Handler = newReferenceHandler("http://"+ts.Listener.Addr().String(), nil, replay)
			ts.Start()
			defer ts.Close()
			tokenURL, apiURL := ts.URL+tokenPath, ts.URL+apiPath
			s := newTestSigner(t, 0)

			proof := dpoptest.Proof(t, s, "POST", tokenURL, dpop.ProofOptions{})
			apiProof := dpoptest.Proof(t, s, "GET", apiURL, dpop.ProofOptions{AccessToken: "ref"})
			refused := tamper(t, dpoptest.Proof(t, s, "POST", tokenURL, dpop.ProofOptions{}))
			for _, step := range []struct {
				name           string
				method, target string
				token, proof   string
				status         int
				body           string
			}{
				{"token: first use", "POST", tokenURL, "", proof, 200, `"access_token"`},
				{"token: replay", "POST", tokenURL, "", proof, 400, "proof replayed"},
				{"api: first use", "GET", apiURL, "ref", apiProof, 200, `"message"`},
				{"api: replay", "GET", apiURL, "ref", apiProof, 401, "proof replayed"},
				{"token: bad signature", "POST", tokenURL, "", refused, 400, "signature does not verify"},
			} {
				status, body := refReply(t, step.method, step.target, step.token, step.proof)
				if status != step.status || !strings.Contains(body, step.body) {
					t.Errorf("%s: got %d %s, want %d and %q", step.name, status, body, step.status, step.body)
				}
			}

			replay.close() // the store is now unreachable
			status, body := refReply(t, "POST", tokenURL, "", dpoptest.Proof(t, s, "POST", tokenURL, dpop.ProofOptions{}))
			if status != 503 || !strings.Contains(body, "replay store unavailable") {
				t.Errorf("store closed: got %d %s, want 503", status, body)
			}
		})
	}
}

func TestReferenceReplayFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-compare", "-spawn", "-reference-replay", "-store", "redis", "-redis-cluster", "-redis-url", "redis://x?addr=y"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.refReplayArgs(), " "); got != "-reference-replay -store redis -redis-url redis://x?addr=y -redis-cluster" {
		t.Errorf("reference args %q", got)
	}
	cfg, _ = parseFlags([]string{"-compare", "-spawn", "-store", "redis", "-redis-url", "redis://x"}, io.Discard)
	if args := cfg.refReplayArgs(); args != nil {
		t.Errorf("reference args without -reference-replay: %q", args)
	}
	for _, bad := range [][]string{
		{"-reference-replay", "-store", "redis", "-redis-url", "redis://x"},                      // neither mode
		{"-compare", "-spawn", "-reference-replay"},                                              // memory store
		{"-serve-reference", "-reference-replay", "-store", "memory"},                            // memory store
		{"-compare", "-reference-replay", "-store", "postgres", "-postgres-url", "postgres://x"}, // -compare without -spawn
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
