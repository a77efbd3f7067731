package pgstore

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
	"github.com/dpopkit/dpop/store"
)

// Bounds of TestKitServerOutage.
const (
	// outageQueryTimeout is the store's Options.QueryTimeout. It is what
	// ends a call to a server that hangs: the kit's request contexts have
	// no deadline, and the pool is given no connect timeout.
	outageQueryTimeout = time.Second
	// outageBound is how long any answer may take while the server is
	// away: the QueryTimeout, and a margin for a shared machine.
	outageBound = outageQueryTimeout + 2*time.Second
	// recoveryWithin bounds the time from the server's return (Start or
	// Resume) to the first token the kit issues again.
	recoveryWithin = 10 * time.Second
	// outageBurst is how many token requests are sent at once during an
	// outage: more than the pool's connections (newPool), so that some
	// wait for a connection the pool cannot make.
	outageBurst = 20
)

// tokensInMemory is a store whose access tokens are looked up in a memory
// store and which is the PostgreSQL store otherwise. Behind the middleware
// its replay cache, the Insert of the proof, is then the one call that
// reaches PostgreSQL; behind the kit's own API the token lookup comes
// first, and an outage never reaches the replay cache.
type tokensInMemory struct {
	*Store
	tokens *store.Memory
}

// GetAccessToken looks h up in the memory store.
func (s tokensInMemory) GetAccessToken(ctx context.Context, h store.TokenHash) (*store.AccessToken, error) {
	return s.tokens.GetAccessToken(ctx, h)
}

// replayOnlyAPI is the kit's API path behind the middleware over st, with
// tok known from memory (tokensInMemory): it answers 200 when the proof is
// accepted, and its only database call is the replay cache's.
func replayOnlyAPI(t *testing.T, st *Store, tok string) http.Handler {
	t.Helper()
	mem, err := store.NewMemory(store.MemoryOptions{})
	must(t, err)
	h := store.HashToken(tok)
	rec, err := st.GetAccessToken(bg, h)
	must(t, err)
	must(t, mem.SaveAccessToken(bg, h, rec))
	protect := testkit.Protect(t, testkit.PublicURL, tokensInMemory{st, mem}, dpop.VerifierOptions{})
	return protect(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
}

// callReplayOnly sends tok with proof to api, as the kit's API call is
// sent, and returns its answer.
func callReplayOnly(api http.Handler, tok, proof string) testkit.Reply {
	req := httptest.NewRequest("GET", testkit.PublicURL+testkit.APIPath, nil)
	req.Header.Set("Authorization", "DPoP "+tok)
	req.Header.Set("DPoP", proof)
	w := httptest.NewRecorder()
	start := time.Now()
	api.ServeHTTP(w, req)
	r := testkit.Reply{Status: w.Code, Header: w.Header(), Raw: w.Body.String(), Took: time.Since(start)}
	json.Unmarshal(w.Body.Bytes(), &r.Body)
	return r
}

// wantUnavailable fails t unless r, the answer to what while the server
// is away, is 503 server_error within outageBound: never a success, and
// never a 400 or 401, which would blame the client. When the server hangs
// the answer must also have waited for the QueryTimeout: that, not a
// refused connection, ended the wait. It returns r.Took.
func wantUnavailable(t *testing.T, what string, r testkit.Reply, hang bool) time.Duration {
	t.Helper()
	if r.Status != http.StatusServiceUnavailable || r.Str("error") != string(dpop.CodeServerError) {
		t.Errorf("%s: %d %s, want 503 %s", what, r.Status, r.Raw, dpop.CodeServerError)
	}
	if r.Took > outageBound {
		t.Errorf("%s: answered after %v, more than %v", what, r.Took, outageBound)
	}
	if hang && r.Took < outageQueryTimeout {
		t.Errorf("%s: answered after %v, before the QueryTimeout (%v): the server did not hang", what, r.Took, outageQueryTimeout)
	}
	return r.Took
}

// TestKitServerOutage runs the kit over a PostgreSQL server of its own and
// takes the server away from it, stopped (connections refused) and then
// paused (SIGSTOP: connections accepted by the kernel, nothing answers).
// While it is away, token requests, a burst of them beyond the pool's
// size, and API calls are answered 503 server_error within outageBound,
// never 200 and never a refusal that blames the client; when it is paused,
// each answer waits for the store's QueryTimeout, which is what bounds it.
// When the server is back, the same kit, store and pool serve again within
// recoveryWithin, after at most one refusal per pooled connection, and a
// token issued before the outage still works. The replay cache fails
// closed: a proof sent while the server is away and again after it is
// accepted at most once. A restart between two requests, which no request
// sees, is the same: 503s until the pool has dropped the connections the
// server closed, then the old token works.
func TestKitServerOutage(t *testing.T) {
	srv := startPGServer(t)
	pool := newPool(t, srv.URL, nil)
	// Each pooled connection the server closed fails one call, and is
	// dropped; then the token comes.
	maxAttempts := int(pool.Config().MaxConns) + 1
	st := openStore(t, pool, DefaultSchema, func(o *Options) { o.QueryTimeout = outageQueryTimeout })
	testkit.RegisterClients(t, st)
	k := testkit.New(t, st, testkit.Options{})
	signer := dpoptest.NewSigner(t)
	tok := k.Token(t, signer)
	testkit.WantStatus(t, "API call with the server up", k.APIWith(t, signer, tok), http.StatusOK, "")
	replayOnly := replayOnlyAPI(t, st, tok)
	testkit.WantStatus(t, "replay-only API with the server up", callReplayOnly(replayOnly, tok, k.Proof(t, signer, "GET", testkit.APIPath, tok)), http.StatusOK, "")

	for _, outage := range []struct {
		name     string
		down, up func(testing.TB)
		hang     bool
	}{
		{"Stopped", srv.Stop, srv.Start, false},
		{"Paused", srv.Pause, srv.Resume, true},
	} {
		ok := t.Run(outage.name, func(t *testing.T) {
			burst := make([]*http.Request, outageBurst)
			for i := range burst {
				burst[i] = k.PostRequest(t, testkit.TokenPath, testkit.ClientCredentialsForm(), true, k.Proof(t, signer, "POST", testkit.TokenPath, ""))
			}
			proof := k.Proof(t, signer, "GET", testkit.APIPath, tok)

			outage.down(t)
			var slowest time.Duration
			note := func(d time.Duration) { slowest = max(slowest, d) }
			note(wantUnavailable(t, "token request", k.ClientCredentials(t, signer), outage.hang))
			note(wantUnavailable(t, "API call", k.APIWith(t, signer, tok), outage.hang))
			accepted := 0
			r := callReplayOnly(replayOnly, tok, proof)
			if r.Status == http.StatusOK {
				accepted++
			}
			note(wantUnavailable(t, "proof checked against the replay cache alone", r, outage.hang))
			replies := make([]testkit.Reply, len(burst))
			errs := make([]error, len(burst))
			var wg sync.WaitGroup
			for i, req := range burst {
				wg.Go(func() { replies[i], errs[i] = k.Send(req) })
			}
			wg.Wait()
			for i, r := range replies {
				must(t, errs[i])
				note(wantUnavailable(t, "token request of a burst", r, outage.hang))
			}
			t.Logf("the slowest of %d answers during the outage took %v", 3+len(burst), slowest)

			outage.up(t)
			r = awaitRecovery(t, "token request", maxAttempts, func() testkit.Reply { return k.ClientCredentials(t, signer) })
			fresh := r.Str("access_token")
			testkit.WantStatus(t, "API call with a token issued after the outage", k.APIWith(t, signer, fresh), http.StatusOK, "")
			testkit.WantStatus(t, "API call with the token issued before the outage", k.APIWith(t, signer, tok), http.StatusOK, "")

			// The replay cache works again (a fresh proof is accepted), and
			// the proof sent during the outage is accepted at most once in
			// all: any other sending of it is a replay, 401.
			testkit.WantStatus(t, "fresh proof after the outage", callReplayOnly(replayOnly, tok, k.Proof(t, signer, "GET", testkit.APIPath, tok)), http.StatusOK, "")
			for range 2 {
				r := callReplayOnly(replayOnly, tok, proof)
				switch r.Status {
				case http.StatusOK:
					accepted++
				case http.StatusUnauthorized:
					testkit.WantStatus(t, "proof from the outage sent again", r, http.StatusUnauthorized, string(dpop.CodeInvalidProof))
				default:
					t.Errorf("proof from the outage sent again: %d %s, want 200 once, then 401", r.Status, r.Raw)
				}
			}
			if accepted > 1 {
				t.Errorf("the proof sent during the outage was accepted %d times", accepted)
			}
			t.Logf("the proof sent during the outage was accepted %d times in all", accepted)
		})
		if !ok {
			return // the server may be left away
		}
	}
	t.Run("RestartedUnseen", func(t *testing.T) {
		// pgxpool pings a connection idle for more than a second before
		// handing it out; a quick restart beats that, and the call that
		// gets a connection the server closed fails (503).
		srv.Stop(t)
		srv.Start(t)
		awaitRecovery(t, "API call with the token issued before the restart", maxAttempts, func() testkit.Reply { return k.APIWith(t, signer, tok) })
	})
}

// awaitRecovery calls call, a request to the kit once the server is back,
// until it succeeds, and returns that answer. The answers before it must be
// 503 server_error (wantUnavailable), and it must come within
// recoveryWithin and maxAttempts calls.
func awaitRecovery(t *testing.T, what string, maxAttempts int, call func() testkit.Reply) testkit.Reply {
	t.Helper()
	back := time.Now()
	for attempt := 1; ; attempt++ {
		r := call()
		if r.Status == http.StatusOK {
			t.Logf("%s: 200 %v after the server came back, at attempt %d", what, time.Since(back).Round(time.Millisecond), attempt)
			return r
		}
		wantUnavailable(t, what+" as the server comes back", r, false)
		if attempt >= maxAttempts || time.Since(back) > recoveryWithin {
			t.Fatalf("%s: no success %v after the server came back, in %d attempts: %d %s", what, time.Since(back).Round(time.Millisecond), attempt, r.Status, r.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
