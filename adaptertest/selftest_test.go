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

// faults maps each broken store to the subtest that must report it.
var faults = []struct {
	name    string
	wrap    func(m *store.Memory) store.Store
	failing string
}{
	{"non-atomic consume", func(m *store.Memory) store.Store {
		return &nonAtomicConsume{memory: m, codes: map[store.TokenHash]*codeState{}}
	}, "Codes/ConcurrentConsume"},
	{"returns expired", func(m *store.Memory) store.Store {
		return &returnsExpired{memory: m, tokens: map[store.TokenHash]store.AccessToken{}}
	}, "Expiry/AccessTokens"},
	{"loses a field", func(m *store.Memory) store.Store { return losesField{m} }, "Codes/RoundTrip"},
	{"non-atomic replay", func(m *store.Memory) store.Store {
		return &nonAtomicReplay{memory: m, seen: map[dpop.ReplayKey]bool{}}
	}, "Replay/Concurrent"},
	{"accepts replays", func(m *store.Memory) store.Store { return acceptsReplays{m} }, "Replay/InsertOnce"},
	{"non-atomic rotate", func(m *store.Memory) store.Store { return nonAtomicRotate{m} }, "RefreshTokens/RotateRace"},
	{"ignores context", func(m *store.Memory) store.Store { return ignoresContext{m} }, "Context"},
	{"ignores grant revocation", func(m *store.Memory) store.Store { return ignoresGrantRevocation{m} }, "Grants/RevokeGrant"},
	{"shares clients", func(m *store.Memory) store.Store {
		return &sharesClients{memory: m, clients: map[string]*store.Client{}}
	}, "Clients/Copies"},
	{"text keys", func(m *store.Memory) store.Store { return textKeys{m} }, "Codes/OddKeys"},
}

const faultEnv = "ADAPTERTEST_FAULT"

// TestBrokenStore runs the suite against the broken store named in
// ADAPTERTEST_FAULT. It is the child process of TestSuiteCatchesFaults and
// does nothing when run directly.
func TestBrokenStore(t *testing.T) {
	name := os.Getenv(faultEnv)
	if name == "" {
		return
	}
	for _, f := range faults {
		if f.name == name {
			adaptertest.Run(t, func(t *testing.T) (store.Store, func()) {
				m, err := store.NewMemory(store.MemoryOptions{})
				if err != nil {
					t.Fatal(err)
				}
				return f.wrap(m), func() { m.Close() }
			})
			return
		}
	}
	t.Fatalf("unknown fault %q", name)
}

// TestSuiteCatchesFaults runs the suite against each broken store in a child
// process and checks that it fails, in the subtest that covers the fault.
func TestSuiteCatchesFaults(t *testing.T) {
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenStore$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), faultEnv+"="+f.name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a store that is broken (%s)", f.name)
			}
			if want := "--- FAIL: TestBrokenStore/" + f.failing; !strings.Contains(string(out), want) {
				t.Fatalf("the suite failed, but not in %s:\n%s", f.failing, failures(string(out)))
			}
		})
	}
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
// correct in-memory store, passes.
func TestSuitePassesCorrectStore(t *testing.T) {
	adaptertest.Run(t, func(t *testing.T) (store.Store, func()) {
		m, err := store.NewMemory(store.MemoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return m, func() { m.Close() }
	})
}
