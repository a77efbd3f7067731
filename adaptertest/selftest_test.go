package adaptertest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/store"
)

// faults maps each broken store to the subtest that must report it, named
// with the suite that runs it first: Run/... or RunInstances/...
var faults = []struct {
	name    string
	wrap    func(m *store.Memory) store.Store
	failing string
	// passes, when set, is a suite that must pass the store: the fault
	// shows only with several instances.
	passes string
}{
	{"non-atomic consume", func(m *store.Memory) store.Store {
		return &nonAtomicConsume{memory: m, codes: map[store.TokenHash]*codeState{}}
	}, "Run/Codes/ConcurrentConsume", ""},
	{"returns expired", func(m *store.Memory) store.Store {
		return &returnsExpired{memory: m, tokens: map[store.TokenHash]store.AccessToken{}}
	}, "Run/Expiry/AccessTokens", ""},
	{"loses a field", func(m *store.Memory) store.Store { return losesField{m} }, "Run/Codes/RoundTrip", ""},
	{"non-atomic replay", func(m *store.Memory) store.Store {
		return &nonAtomicReplay{memory: m, seen: map[dpop.ReplayKey]bool{}}
	}, "Run/Replay/Concurrent", ""},
	{"accepts replays", func(m *store.Memory) store.Store { return acceptsReplays{m} }, "Run/Replay/InsertOnce", ""},
	{"non-atomic rotate", func(m *store.Memory) store.Store { return nonAtomicRotate{m} }, "Run/RefreshTokens/RotateRace", ""},
	{"ignores context", func(m *store.Memory) store.Store { return ignoresContext{m} }, "Run/Context", ""},
	{"ignores grant revocation", func(m *store.Memory) store.Store { return ignoresGrantRevocation{m} }, "Run/Grants/RevokeGrant", ""},
	{"shares clients", func(m *store.Memory) store.Store {
		return &sharesClients{memory: m, clients: map[string]*store.Client{}}
	}, "Run/Clients/Copies", ""},
	{"text keys", func(m *store.Memory) store.Store { return textKeys{m} }, "Run/Codes/OddKeys", ""},
	{"per-instance replay cache", func(m *store.Memory) store.Store {
		return &perInstanceReplay{memory: m, caches: map[string]*dpop.MemoryReplayCache{}}
	}, "RunInstances/ProofReplay", "Run"},
	{"per-instance token cache", func(m *store.Memory) store.Store {
		return &perInstanceTokenCache{memory: m, caches: map[string]map[store.TokenHash]store.AccessToken{}}
	}, "RunInstances/RevocationAtASeenByB", "Run"},
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
	t.Fatalf("unknown fault %q", name)
}

// TestSuiteCatchesFaults runs a suite against each broken store in a child
// process and checks that it fails, in the subtest that covers the fault;
// for a fault that only several instances show, it checks that the other
// suite passes the store.
func TestSuiteCatchesFaults(t *testing.T) {
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			suite, _, _ := strings.Cut(f.failing, "/")
			out, err := runBroken(f.name, suite)
			if err == nil {
				t.Fatalf("%s passed a store that is broken (%s)", suite, f.name)
			}
			if want := "--- FAIL: TestBrokenStore/" + f.failing; !strings.Contains(out, want) {
				t.Fatalf("%s failed, but not in %s:\n%s", suite, f.failing, failures(out))
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

// runBroken runs suite against the broken store named fault in a child
// process and returns its output.
func runBroken(fault, suite string) (string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenStore$/^"+suite+"$", "-test.v", "-test.count=1")
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

// TestSuitePassesCorrectStore is the control: the same harness, with the
// correct in-memory store, passes both suites.
func TestSuitePassesCorrectStore(t *testing.T) {
	runSuites(t, memoryStores(func(m *store.Memory) store.Store { return m }))
}
