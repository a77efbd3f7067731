package adaptertest_test

import (
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/store"
)

// faults maps each broken store to the subtest that must report it, named
// with the suite that runs it first: Run/... or RunInstances/...
var faults = []struct {
	name string
	wrap func(m *store.Memory) store.Store
	// failing is the subtest that must fail; alsoFailing are more that
	// must, in the same group (the first two levels of failing).
	failing     string
	alsoFailing []string
	// says, when set, must be in the output: the message of the check.
	says string
	// passes, when set, is a suite that must pass the store: the fault
	// shows only with several instances.
	passes string
}{
	{name: "non-atomic consume", wrap: func(m *store.Memory) store.Store {
		return &nonAtomicConsume{memory: m, window: gap, codes: map[store.TokenHash]*codeState{}}
	}, failing: "Run/Codes/ConcurrentConsume"},
	{name: "returns expired", wrap: func(m *store.Memory) store.Store {
		return &returnsExpired{memory: m, tokens: map[store.TokenHash]store.AccessToken{}}
	}, failing: "Run/Expiry/AccessTokens"},
	{name: "loses a field", wrap: func(m *store.Memory) store.Store { return losesField{m} }, failing: "Run/Codes/RoundTrip"},
	{name: "loses the audience", wrap: func(m *store.Memory) store.Store { return losesAudience{m} },
		failing: "Run/AccessTokens/RoundTrip", says: "Audience = []"},
	{name: "re-encodes claims", wrap: func(m *store.Memory) store.Store { return reencodesClaims{m} },
		failing: "Run/RefreshTokens/RoundTrip", says: "Claims = "},
	{name: "rotation keeps the old audience", wrap: func(m *store.Memory) store.Store { return rotationKeepsAudience{m} },
		failing: "Run/RefreshTokens/Rotate"},
	{name: "shares token slices", wrap: func(m *store.Memory) store.Store {
		return &sharesTokens{memory: m, tokens: map[store.TokenHash]*store.AccessToken{}}
	}, failing: "Run/AccessTokens/Copies"},
	{name: "non-atomic replay", wrap: func(m *store.Memory) store.Store {
		return &nonAtomicReplay{memory: m, window: gap, seen: map[dpop.ReplayKey]bool{}}
	}, failing: "Run/Replay/Concurrent"},
	{name: "accepts replays", wrap: func(m *store.Memory) store.Store { return acceptsReplays{m} }, failing: "Run/Replay/InsertOnce"},
	{name: "non-atomic rotate", wrap: func(m *store.Memory) store.Store { return nonAtomicRotate{m, gap} }, failing: "Run/RefreshTokens/RotateRace"},
	{name: "ignores context", wrap: func(m *store.Memory) store.Store { return ignoresContext{m} }, failing: "Run/Context"},
	{name: "ignores grant revocation", wrap: func(m *store.Memory) store.Store { return ignoresGrantRevocation{m} }, failing: "Run/Grants/RevokeGrant"},
	{name: "shares clients", wrap: func(m *store.Memory) store.Store {
		return &sharesClients{memory: m, clients: map[string]*store.Client{}}
	}, failing: "Run/Clients/Copies"},
	{name: "registers invalid clients", wrap: func(m *store.Memory) store.Store {
		return &checksOnlyID{memory: m, clients: map[string]*store.Client{}}
	}, failing: "Run/Clients/RefusesInvalid", says: "SaveClient of an invalid client (grant password): <nil>"},
	{name: "refuses a native app's redirect URI", wrap: func(m *store.Memory) store.Store { return refusesTooMuch{m} },
		failing: "Run/Clients/AcceptsValidEdgeCases"},
	{name: "text keys", wrap: func(m *store.Memory) store.Store { return textKeys{m} }, failing: "Run/Codes/OddKeys"},
	{name: "per-instance replay cache", wrap: func(m *store.Memory) store.Store {
		return &perInstanceReplay{memory: m, caches: map[string]*dpop.MemoryReplayCache{}}
	}, failing: "RunInstances/ProofReplay", passes: "Run"},
	{name: "per-instance token cache", wrap: func(m *store.Memory) store.Store {
		return &perInstanceTokenCache{memory: m, caches: map[string]map[store.TokenHash]store.AccessToken{}}
	}, failing: "RunInstances/RevocationAtASeenByB", passes: "Run"},

	// Races with a window of one scheduling point: many rounds catch them.
	{name: "non-atomic consume, narrow window", wrap: func(m *store.Memory) store.Store {
		return &nonAtomicConsume{memory: m, window: runtime.Gosched, codes: map[store.TokenHash]*codeState{}}
	}, failing: "Run/Codes/ConcurrentConsume"},
	{name: "non-atomic rotate, narrow window", wrap: func(m *store.Memory) store.Store {
		return nonAtomicRotate{m, runtime.Gosched}
	}, failing: "Run/RefreshTokens/RotateRace"},
	{name: "non-atomic replay, narrow window", wrap: func(m *store.Memory) store.Store {
		return &nonAtomicReplay{memory: m, window: runtime.Gosched, seen: map[dpop.ReplayKey]bool{}}
	}, failing: "Run/Replay/Concurrent"},

	// GetCode.
	{name: "GetCode consumes", wrap: func(m *store.Memory) store.Store { return consumingGet{m} }, failing: "Run/Codes/GetDoesNotConsume"},
	{name: "GetCode hides the consumed record", wrap: func(m *store.Memory) store.Store { return hidesConsumedRecord{m} },
		failing: "Run/Codes/GetConsumed", says: "returned no record"},

	// Pushed authorization requests.
	{name: "pushed request consumed twice", wrap: func(m *store.Memory) store.Store {
		return &nonAtomicPushed{memory: m, window: gap, reqs: map[store.TokenHash]*pushedState{}}
	}, failing: "Run/PushedRequests/ConcurrentConsume"},
	{name: "pushed request consumed twice, narrow window", wrap: func(m *store.Memory) store.Store {
		return &nonAtomicPushed{memory: m, window: runtime.Gosched, reqs: map[store.TokenHash]*pushedState{}}
	}, failing: "Run/PushedRequests/ConcurrentConsume"},
	{name: "pushed request never consumed", wrap: func(m *store.Memory) store.Store { return pushedNeverConsumed{m} },
		failing: "Run/PushedRequests/ConsumeOnce", alsoFailing: []string{"Run/PushedRequests/ConcurrentConsume"},
		says: "ConsumePushedRequest 2 of a consumed request: error <nil>"},
	{name: "GetPushedRequest consumes", wrap: func(m *store.Memory) store.Store { return consumingPushedGet{m} },
		failing: "Run/PushedRequests/GetDoesNotConsume"},

	// The bound on consumed refresh tokens.
	{name: "keeps every consumed token", wrap: chainFaulty(keepsAll), failing: "Run/RefreshTokens/ChainBound", says: "the chain is not bounded"},
	{name: "keeps too few consumed tokens", wrap: chainFaulty(keepsTooFew), failing: "Run/RefreshTokens/ChainBound", says: "a consumed token must be remembered"},
	{name: "forgets the live token", wrap: chainFaulty(forgetsLive), failing: "Run/RefreshTokens/ChainBound", says: "the live one"},
	{name: "bounds consumed tokens per client", wrap: chainFaulty(boundsPerClient), failing: "Run/RefreshTokens/ChainBound", says: "of another grant"},

	// Lifetimes.
	{name: "replay entries live 300ms", wrap: func(m *store.Memory) store.Store { return shortReplay{m} },
		failing: "Run/Expiry/ReplayLivesWholeTTL", alsoFailing: []string{"Run/Expiry/SubsecondReplay"}},
	{name: "revocations last 200ms", wrap: func(m *store.Memory) store.Store { return shortRevocation{m} },
		failing: "Run/Expiry/GrantRevocationLastsUntil"},
	{name: "a later revocation shortens", wrap: func(m *store.Memory) store.Store {
		return &revocationFault{memory: m, until: map[string]time.Time{}}
	}, failing: "Run/Expiry/GrantRevocationNotShortened"},
	{name: "a later revocation does not extend", wrap: func(m *store.Memory) store.Store {
		return &revocationFault{memory: m, firstWins: true, until: map[string]time.Time{}}
	}, failing: "Run/Expiry/GrantRevocationExtended"},
	{name: "expiries truncated to seconds", wrap: truncated, failing: "Run/Expiry/SubsecondCodes",
		alsoFailing: []string{"Run/Expiry/SubsecondAccessTokens", "Run/Expiry/SubsecondRefreshTokens", "Run/Expiry/SubsecondReplay"}},
	{name: "expiries rounded to seconds", wrap: rounded, failing: "Run/Expiry/SubsecondCodes",
		alsoFailing: []string{"Run/Expiry/SubsecondAccessTokens", "Run/Expiry/SubsecondRefreshTokens", "Run/Expiry/SubsecondReplay"}},

	// A call that never returns: the watchdog fails the subtest after
	// CallTimeout instead of hanging the test binary.
	{name: "hangs", wrap: func(m *store.Memory) store.Store { return &hangsOnce{memory: m, once: &hangOnce} },
		failing: "Run/RefreshTokens/RotateTwice", says: "store call RotateRefreshToken did not return within"},
}

// chainFaulty wraps stores with that fault of the chain bound.
func chainFaulty(f chainFault) func(m *store.Memory) store.Store {
	return func(m *store.Memory) store.Store {
		return &chainStore{memory: m, fault: f, consumed: map[string][]store.TokenHash{}, kept: map[store.TokenHash]store.RefreshToken{}}
	}
}

const faultEnv = "ADAPTERTEST_FAULT"

// memoryStores is the constructor both suites get: fresh in-memory stores,
// wrapped by wrap.
func memoryStores(wrap func(m *store.Memory) store.Store) adaptertest.NewStore {
	return func(t *testing.T) (store.Store, func()) {
		m, err := store.NewMemory(store.MemoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return wrap(m), func() { m.Close() }
	}
}

// runSuites runs Run and RunInstances, as subtests of those names, against
// the stores newStore returns.
func runSuites(t *testing.T, newStore adaptertest.NewStore) {
	t.Run("Run", func(t *testing.T) { adaptertest.Run(t, newStore) })
	t.Run("RunInstances", func(t *testing.T) { adaptertest.RunInstances(t, adaptertest.SameStore(newStore)) })
}

// controls are correct stores the self-test runs like the broken ones.
var controls = map[string]func(m *store.Memory) store.Store{
	"without pushed requests": func(m *store.Memory) store.Store { return withoutPushed{m} },
}

// TestBrokenStore runs the suites against the broken store named in
// ADAPTERTEST_FAULT. It is the child process of TestSuiteCatchesFaults,
// which picks a suite with -test.run, and does nothing when run directly.
func TestBrokenStore(t *testing.T) {
	name := os.Getenv(faultEnv)
	if name == "" {
		return
	}
	for _, f := range faults {
		if f.name == name {
			runSuites(t, memoryStores(f.wrap))
			return
		}
	}
	if wrap, ok := controls[name]; ok {
		runSuites(t, memoryStores(wrap))
		return
	}
	t.Fatalf("unknown fault %q", name)
}

// TestSuiteCatchesFaults runs the group of a suite that covers each broken
// store (Run/Expiry, say) in a child process and checks that it fails, in
// the subtests that cover the fault; for a fault that only several
// instances show, it checks that the other suite passes the store.
func TestSuiteCatchesFaults(t *testing.T) {
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			group := strings.Join(strings.SplitN(f.failing, "/", 3)[:2], "/")
			out, err := runBroken(f.name, group)
			if err == nil {
				t.Fatalf("%s passed a store that is broken (%s)", group, f.name)
			}
			for _, sub := range append([]string{f.failing}, f.alsoFailing...) {
				if want := "--- FAIL: TestBrokenStore/" + sub + " ("; !strings.Contains(out, want) {
					t.Fatalf("%s failed, but not in %s:\n%s", group, sub, failures(out))
				}
			}
			if f.says != "" && !strings.Contains(out, f.says) {
				t.Fatalf("%s failed, but without saying %q:\n%s", group, f.says, failures(out))
			}
			if f.passes == "" {
				return
			}
			out, err = runBroken(f.name, f.passes)
			if want := "--- PASS: TestBrokenStore/" + f.passes + " ("; err != nil || !strings.Contains(out, want) {
				t.Fatalf("%s did not pass a store whose fault only several instances show (%s):\n%s", f.passes, f.name, failures(out))
			}
		})
	}
}

// childTimeout bounds a child process: a suite whose watchdog failed shows
// as a timeout in its output rather than a hung self-test.
const childTimeout = 3 * time.Minute

// runBroken runs the subtests named by path (a suite, or a suite and one
// of its groups: Run/Expiry) against the broken store named fault in a
// child process and returns its output.
func runBroken(fault, path string) (string, error) {
	pattern := "^TestBrokenStore$"
	for _, name := range strings.Split(path, "/") {
		pattern += "/^" + regexp.QuoteMeta(name) + "$"
	}
	cmd := exec.Command(os.Args[0], "-test.run="+pattern, "-test.v", "-test.count=1", "-test.timeout="+childTimeout.String())
	cmd.Env = append(os.Environ(), faultEnv+"="+fault)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// failures keeps the FAIL lines and messages of a test run's output.
func failures(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "FAIL") || strings.Contains(l, ".go:") || strings.Contains(l, "panic") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestSuiteWithoutPushedRequests: a store without store.PushedRequestStore
// passes the PushedRequests group, and its pushed requests' part of the
// Expiry group, without a subtest run and without a skip (CI refuses
// skipped tests).
func TestSuiteWithoutPushedRequests(t *testing.T) {
	t.Parallel()
	for _, group := range []string{"Run/PushedRequests", "Run/Expiry"} {
		out, err := runBroken("without pushed requests", group)
		if err != nil || !strings.Contains(out, "--- PASS: TestBrokenStore/"+group+" (") {
			t.Fatalf("%s failed a correct store without pushed requests:\n%s", group, failures(out))
		}
		if strings.Contains(out, "TestBrokenStore/Run/PushedRequests/") || strings.Contains(out, "SKIP") {
			t.Fatalf("%s ran subtests of pushed requests, or skipped, for a store without them:\n%s", group, out)
		}
		if !strings.Contains(out, "does not implement store.PushedRequestStore") {
			t.Fatalf("%s did not say why it checked no pushed requests:\n%s", group, out)
		}
	}
}

// TestSuitePassesCorrectStore is the control: the same harness, with the
// correct in-memory store, passes both suites.
func TestSuitePassesCorrectStore(t *testing.T) {
	runSuites(t, memoryStores(func(m *store.Memory) store.Store { return m }))
}
