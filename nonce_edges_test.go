package dpop

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// brokenNonces is a NonceSource that cannot issue: Nonce returns nonce and
// err, Check accepts nothing.
type brokenNonces struct {
	nonce string
	err   error
}

func (b brokenNonces) Nonce(context.Context) (string, error) { return b.nonce, b.err }

func (brokenNonces) Check(context.Context, string) (time.Time, bool) { return time.Time{}, false }

// Item: when the proof needs a nonce (it carries none, or one the source
// refuses) and the source cannot give one, the proof is refused with
// server_error (a 503 at the endpoints) and no nonce: never accepted, and
// never a use_dpop_nonce the client could not act on, whatever the failing
// source returned beside its error.
func TestNonceSourceFailureRefuses(t *testing.T) {
	es := newTestKey(t, ES256)
	errDown := errors.New("nonce backend down")
	for _, src := range []struct {
		name string
		src  brokenNonces
	}{
		{"error, no nonce", brokenNonces{err: errDown}},
		{"error with a nonce", brokenNonces{nonce: "stale-nonce-value", err: errDown}},
		{"no nonce, no error", brokenNonces{}},
	} {
		v := newTestVerifier(t, func(o *VerifierOptions) { o.Nonces = src.src })
		for _, proof := range []struct {
			name  string
			edit  func(c map[string]any)
			cause error
		}{
			{"proof without a nonce", nil, ErrNonce},
			{"proof with a nonce the source refuses", func(c map[string]any) { c["nonce"] = "stale-nonce-value" }, ErrNonce},
		} {
			t.Run(src.name+", "+proof.name, func(t *testing.T) {
				p, err := v.Verify(bg, tokenRequest(es.proof(t, proof.edit)))
				wantRefused(t, p, err, CodeServerError, proof.cause)
				if e, ok := err.(*Error); ok && e.Nonce != "" {
					t.Errorf("refusal carries nonce %q", e.Nonce)
				}
			})
		}
	}
}

// nonceSourceAt returns a source with secret and step whose clock stands at
// at.
func nonceSourceAt(t *testing.T, secret []byte, step time.Duration, at time.Time) *HMACNonceSource {
	t.Helper()
	src, err := NewHMACNonceSource(HMACNonceOptions{Secret: secret, Step: step, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// nonceAt returns the nonce a source with secret and step issues at time at.
func nonceAt(t *testing.T, secret []byte, step time.Duration, at time.Time) string {
	t.Helper()
	n, err := nonceSourceAt(t, secret, step, at).Nonce(bg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Item: a nonce is accepted while the checker's step is the one it was
// issued in or a neighbouring one (RFC 9449 §8 leaves the window to the
// server; nonce.go: c-1 <= now <= c+1), and refused one nanosecond outside
// that, before and after; it is accepted until the end of the step after
// the next, which Check returns.
func TestHMACNonceWindowEdges(t *testing.T) {
	secret := bytes.Repeat([]byte{5}, 32)
	const step = time.Minute
	issued := testNow.Truncate(step).Add(17 * time.Second) // inside step c
	start := issued.Truncate(step)                         // first instant of step c
	n := nonceAt(t, secret, step, issued)
	for _, tc := range []struct {
		name string
		at   time.Time // the checker's clock
		ok   bool
	}{
		{"same step", issued, true},
		{"start of the issuing step", start, true},
		{"end of the next step", start.Add(2*step - 1), true},
		{"start of the step after the next", start.Add(2 * step), false},
		{"two steps later", issued.Add(2 * step), false},
		{"start of the previous step (checker behind)", start.Add(-step), true},
		{"end of the step before the previous", start.Add(-step - 1), false},
		{"two steps earlier", issued.Add(-2 * step), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := tc.at
			src, err := NewHMACNonceSource(HMACNonceOptions{Secret: secret, Step: step, Now: func() time.Time { return at }})
			if err != nil {
				t.Fatal(err)
			}
			until, ok := src.Check(bg, n)
			if ok != tc.ok {
				t.Fatalf("Check at %v of a nonce issued at %v: %v, want %v", at.Sub(issued), issued, ok, tc.ok)
			}
			if ok && !until.Equal(start.Add(2*step)) {
				t.Errorf("valid until %v, want %v (the end of the step after the next)", until.Sub(start), 2*step)
			}
		})
	}
	// The same edges seen from the checker: nonces issued one and two steps
	// ahead of its clock (an instance whose clock runs fast).
	checker, err := NewHMACNonceSource(HMACNonceOptions{Secret: secret, Step: step, Now: func() time.Time { return issued }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		at   time.Time // the issuer's clock
		ok   bool
	}{
		{"issued one step ahead", issued.Add(step), true},
		{"issued at the end of the next step", start.Add(2*step - 1), true},
		{"issued two steps ahead", issued.Add(2 * step), false},
		{"issued at the start of the step after the next", start.Add(2 * step), false},
		{"issued one step behind", issued.Add(-step), true},
		{"issued two steps behind", issued.Add(-2 * step), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := checker.Check(bg, nonceAt(t, secret, step, tc.at)); ok != tc.ok {
				t.Fatalf("Check: %v, want %v", ok, tc.ok)
			}
		})
	}
}

// Item: with two previous secrets (a rotation kept in flight), nonces of
// the current and of both previous secrets are accepted, only the current
// one issues, an unrelated secret's are refused; every previous secret is
// length-checked, and the source keeps its own copies of the secrets.
func TestHMACNonceTwoPreviousSecrets(t *testing.T) {
	cur, prev1, prev2, other := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 32), bytes.Repeat([]byte{4}, 32)
	const step = time.Minute
	clock := func() time.Time { return testNow }
	opts := HMACNonceOptions{Secret: bytes.Clone(cur), PreviousSecrets: [][]byte{bytes.Clone(prev1), bytes.Clone(prev2)}, Step: step, Now: clock}
	src, err := NewHMACNonceSource(opts)
	if err != nil {
		t.Fatal(err)
	}
	// The caller's slices are the caller's: changing them afterwards
	// changes nothing.
	for _, s := range append([][]byte{opts.Secret}, opts.PreviousSecrets...) {
		clear(s)
	}
	issued, err := src.Nonce(bg)
	if err != nil {
		t.Fatal(err)
	}
	if want := nonceAt(t, cur, step, testNow); issued != want {
		t.Fatalf("issued %q, want the current secret's %q", issued, want)
	}
	for _, tc := range []struct {
		name   string
		secret []byte
		ok     bool
	}{
		{"current secret", cur, true},
		{"first previous secret", prev1, true},
		{"second previous secret", prev2, true},
		{"unrelated secret", other, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := src.Check(bg, nonceAt(t, tc.secret, step, testNow)); ok != tc.ok {
				t.Fatalf("Check: %v, want %v", ok, tc.ok)
			}
		})
	}
	t.Run("through a verifier", func(t *testing.T) {
		es := newTestKey(t, ES256)
		v := newTestVerifier(t, func(o *VerifierOptions) { o.Nonces = src })
		nonce := nonceAt(t, prev2, step, testNow)
		p, err := v.Verify(bg, tokenRequest(es.proof(t, func(c map[string]any) { c["nonce"] = nonce })))
		if err != nil {
			t.Fatal(err)
		}
		if p.Nonce != nonce {
			t.Fatalf("proof nonce %q", p.Nonce)
		}
	})
	t.Run("a short second previous secret is refused", func(t *testing.T) {
		_, err := NewHMACNonceSource(HMACNonceOptions{Secret: cur, PreviousSecrets: [][]byte{prev1, prev2[:31]}, Now: clock})
		if err == nil {
			t.Fatal("accepted")
		}
	})
}
