//go:build !race

package dpop

import (
	"crypto"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
)

// TestDefaultAlgorithmCost measures, in this process, the signature check
// (jose.Verify) of every default algorithm with its most expensive key,
// and fails if one costs more than maxDefaultCostRatio × ES256.
//
// It is built to hold on a small, busy machine: each algorithm is timed in
// many runs of about a millisecond, interleaved with the others so that all
// see the same conditions, and only its fastest run counts, since load from
// other processes only ever adds time. It stops as soon as every ratio is
// clearly below the limit (usually within a few tenths of a second) and
// otherwise keeps sampling, for quiet moments, until maxTime.
//
// It is built only without the race detector, whose timings are not those
// of a real build (it slows Go code such as the P-384 field arithmetic many
// times over, but not the assembly of P-256, so ES384 seems 50-70× ES256):
// .ci/run runs it in a build of its own.
func TestDefaultAlgorithmCost(t *testing.T) {
	const (
		runTime   = time.Millisecond // length of one timed run
		minRounds = 5
		maxTime   = 10 * time.Second          // only a ratio near the limit takes it
		goodRatio = 0.9 * maxDefaultCostRatio // stop early when all are below
	)
	type subject struct {
		alg   string
		spec  jose.Spec
		key   crypto.PublicKey
		input string
		sig   []byte
		n     int           // calls per run
		best  time.Duration // fastest run, per call
	}
	if !slices.Contains(DefaultAlgorithms(), ES256) {
		t.Fatal("ES256, the reference, is not a default algorithm")
	}
	var subjects []*subject
	var ref *subject
	for _, alg := range DefaultAlgorithms() {
		k := worstCaseKey(t, alg)
		p := k.proof(t, nil)
		dot := strings.LastIndexByte(p, '.')
		sig, err := base64.RawURLEncoding.DecodeString(p[dot+1:])
		if err != nil {
			t.Fatal(err)
		}
		s := &subject{alg: alg, spec: specOf(alg), key: k.priv.Public(), input: p[:dot], sig: sig}
		// The first call also warms up lazily built tables; time the second
		// to size the runs.
		if !jose.Verify(s.spec, s.key, s.input, s.sig) {
			t.Fatalf("%s: the signature does not verify", alg)
		}
		start := time.Now()
		jose.Verify(s.spec, s.key, s.input, s.sig)
		s.n = max(1, int(runTime/max(time.Since(start), time.Microsecond)))
		s.best = time.Duration(1<<63 - 1)
		subjects = append(subjects, s)
		if alg == ES256 {
			ref = s
		}
	}
	worst := func() (string, float64) {
		alg, r := "", 0.0
		for _, s := range subjects {
			if q := float64(s.best) / float64(ref.best); q > r {
				alg, r = s.alg, q
			}
		}
		return alg, r
	}
	deadline := time.Now().Add(maxTime)
	rounds := 0
	for ; rounds < minRounds || time.Now().Before(deadline); rounds++ {
		if rounds >= minRounds {
			if _, r := worst(); r <= goodRatio {
				break
			}
		}
		for _, s := range subjects {
			start := time.Now()
			for range s.n {
				jose.Verify(s.spec, s.key, s.input, s.sig)
			}
			s.best = min(s.best, time.Since(start)/time.Duration(s.n))
		}
	}
	t.Logf("fastest of %d runs per algorithm:", rounds)
	for _, s := range subjects {
		t.Logf("  %-8s %12v/op  %5.2f× ES256", s.alg, s.best, float64(s.best)/float64(ref.best))
	}
	if alg, r := worst(); r > maxDefaultCostRatio {
		t.Errorf("%s costs %.1f× an ES256 check with default options, above %d×", alg, r, maxDefaultCostRatio)
	}
}
