package dpop

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func newTestNonces(t testing.TB) *HMACNonceSource {
	t.Helper()
	n, err := NewHMACNonceSource(HMACNonceOptions{Secret: bytes.Repeat([]byte{7}, 32), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestHMACNonceSource(t *testing.T) {
	secret := bytes.Repeat([]byte{1}, 32)
	now := testNow
	clock := func() time.Time { return now }
	src, err := NewHMACNonceSource(HMACNonceOptions{Secret: secret, Step: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	n1, _ := src.Nonce(bg)
	if n2, _ := src.Nonce(bg); n2 != n1 {
		t.Fatal("nonce changed within a step")
	}
	if until, ok := src.Check(bg, n1); !ok || until.Sub(now) <= time.Minute || until.Sub(now) > 2*time.Minute {
		t.Fatalf("fresh nonce: %v %v", until, ok)
	}
	now = now.Add(time.Minute)
	n3, _ := src.Nonce(bg)
	if n3 == n1 {
		t.Fatal("nonce did not rotate")
	}
	if _, ok := src.Check(bg, n1); !ok {
		t.Fatal("previous step's nonce refused")
	}
	now = now.Add(time.Minute)
	if _, ok := src.Check(bg, n1); ok {
		t.Fatal("nonce accepted two steps later")
	}

	other, _ := NewHMACNonceSource(HMACNonceOptions{Secret: bytes.Repeat([]byte{2}, 32), Step: time.Minute, Now: clock})
	on, _ := other.Nonce(bg)
	if _, ok := src.Check(bg, on); ok {
		t.Fatal("nonce of another secret accepted")
	}
	// Rotating the secret: the new source still accepts the old one's nonces.
	rotated, _ := NewHMACNonceSource(HMACNonceOptions{Secret: bytes.Repeat([]byte{3}, 32), PreviousSecrets: [][]byte{bytes.Repeat([]byte{2}, 32)}, Step: time.Minute, Now: clock})
	if _, ok := rotated.Check(bg, on); !ok {
		t.Fatal("nonce of a previous secret refused")
	}
	if rn, _ := rotated.Nonce(bg); rn == on {
		t.Fatal("previous secret used to issue")
	}

	cur, _ := src.Nonce(bg)
	for _, bad := range []string{"", "x", cur + "A", cur[:len(cur)-1], strings.ToUpper(cur), cur[:len(cur)-1] + "+", "eyJ7S_zG.eyJH0-Z.HX4w-7v", strings.Repeat("A", 10000)} {
		if bad == cur {
			continue
		}
		if _, ok := src.Check(bg, bad); ok {
			t.Errorf("Check(%q) accepted", bad)
		}
	}
	// A forged counter with a copied MAC fails.
	raw, _ := b64.DecodeString(cur)
	raw[7] ^= 1
	if _, ok := src.Check(bg, enc(raw)); ok {
		t.Error("altered counter accepted")
	}
}

func TestHMACNonceOptions(t *testing.T) {
	for _, o := range []HMACNonceOptions{
		{},
		{Secret: []byte("short")},
		{Secret: bytes.Repeat([]byte{1}, 32), Step: -time.Second},
		{Secret: bytes.Repeat([]byte{1}, 32), Step: time.Millisecond},
		{Secret: bytes.Repeat([]byte{1}, 32), PreviousSecrets: [][]byte{[]byte("short")}},
	} {
		if _, err := NewHMACNonceSource(o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

// Checklist 1.9: with nonces required, a proof without a valid recent nonce
// gets use_dpop_nonce and a fresh nonce.
func TestCheck9Nonce(t *testing.T) {
	es := newTestKey(t, ES256)
	now := testNow
	clock := func() time.Time { return now }
	src, err := NewHMACNonceSource(HMACNonceOptions{Secret: bytes.Repeat([]byte{9}, 32), Step: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, func(o *VerifierOptions) { o.Nonces = src; o.Now = clock })
	fresh, _ := v.Nonce(bg)
	withNonce := func(n any) string {
		return es.proof(t, func(c map[string]any) {
			c["iat"] = now.Unix()
			if n != nil {
				c["nonce"] = n
			}
		})
	}
	for _, tc := range []struct {
		name  string
		nonce any
	}{
		{"missing", nil},
		{"empty", ""},
		{"invented", "eyJ7S_zG.eyJH0-Z.HX4w-7v"},
		{"truncated", fresh[:len(fresh)-2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(bg, tokenRequest(withNonce(tc.nonce)))
			wantRefused(t, p, err, CodeUseNonce, ErrNonce)
			if got := err.(*Error).Nonce; got != fresh {
				t.Errorf("nonce in error = %q, want %q", got, fresh)
			}
		})
	}
	t.Run("not a string", func(t *testing.T) {
		p, err := v.Verify(bg, tokenRequest(withNonce(42)))
		wantRefused(t, p, err, CodeInvalidProof, ErrClaims)
	})
	t.Run("valid", func(t *testing.T) {
		p, err := v.Verify(bg, tokenRequest(withNonce(fresh)))
		if err != nil || p.Nonce != fresh {
			t.Fatalf("%v %+v", err, p)
		}
	})
	t.Run("expired", func(t *testing.T) {
		now = testNow.Add(3 * time.Minute)
		defer func() { now = testNow }()
		p, err := v.Verify(bg, tokenRequest(withNonce(fresh)))
		wantRefused(t, p, err, CodeUseNonce, ErrNonce)
		if err.(*Error).Nonce == fresh {
			t.Error("stale nonce handed out again")
		}
	})
	t.Run("replay entry lives as long as the nonce", func(t *testing.T) {
		rec := &recordingCache{}
		v := newTestVerifier(t, func(o *VerifierOptions) { o.Nonces = src; o.Now = clock; o.ReplayCache = rec })
		if _, err := v.Verify(bg, tokenRequest(withNonce(fresh))); err != nil {
			t.Fatal(err)
		}
		if until, _ := src.Check(bg, fresh); rec.ttl < until.Sub(now) {
			t.Fatalf("ttl %v shorter than the nonce's life %v", rec.ttl, until.Sub(now))
		}
	})
	t.Run("off by default", func(t *testing.T) {
		v := newTestVerifier(t, nil)
		if v.NoncesRequired() {
			t.Fatal("nonces on by default")
		}
		if n, err := v.Nonce(bg); n != "" || err != nil {
			t.Fatalf("Nonce = %q, %v", n, err)
		}
		if _, err := v.Verify(bg, tokenRequest(es.proof(t, nil))); err != nil {
			t.Fatal(err)
		}
	})
}
