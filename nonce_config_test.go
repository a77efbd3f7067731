package dpop

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Each unusable HMACNonceOptions is refused with its own error.
func TestHMACNonceOptionsRefusedWithReason(t *testing.T) {
	secret := bytes.Repeat([]byte{1}, 32)
	tests := []struct {
		name string
		opts HMACNonceOptions
		want string
	}{
		{"no secret", HMACNonceOptions{}, "dpop: nonce secret must be at least 32 bytes"},
		{"short secret", HMACNonceOptions{Secret: secret[:31]}, "dpop: nonce secret must be at least 32 bytes"},
		{"short previous secret", HMACNonceOptions{Secret: secret, PreviousSecrets: [][]byte{secret, secret[:31]}},
			"dpop: previous nonce secrets must be at least 32 bytes"},
		{"negative step", HMACNonceOptions{Secret: secret, Step: -time.Nanosecond}, "dpop: negative nonce step"},
		{"very negative step", HMACNonceOptions{Secret: secret, Step: -time.Hour}, "dpop: negative nonce step"},
		{"step under a second", HMACNonceOptions{Secret: secret, Step: time.Second - 1}, "dpop: nonce step shorter than a second"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewHMACNonceSource(tc.opts)
			if err == nil {
				t.Fatalf("accepted (step %v)", s.step)
			}
			if s != nil {
				t.Error("a source was returned with the error")
			}
			if err.Error() != tc.want {
				t.Errorf("error %q, want %q", err, tc.want)
			}
		})
	}
	if _, err := NewHMACNonceSource(HMACNonceOptions{Secret: secret, Step: time.Second}); err != nil {
		t.Errorf("a one-second step is refused: %v", err)
	}
}

// Check accepts only the exact string Nonce issued: base64 decoding skips
// CR and LF, so a nonce with a line break in place of its last character
// decodes, without error, to one byte less. When the byte dropped is zero
// (the nonce ends in 'A') the shorter value matches the MAC in every byte
// read, and only the decoded length tells it apart.
func TestHMACNonceCheckRefusesShortDecode(t *testing.T) {
	secret := bytes.Repeat([]byte{9}, 32)
	const step = time.Minute
	// A step whose nonce has a zero last byte (about one in 256).
	c := testNow.UnixNano() / int64(step)
	for nonceMAC(secret, c)[nonceMACSize-1] != 0 {
		c++
	}
	at := time.Unix(0, c*int64(step)+int64(step)/2)
	src := nonceSourceAt(t, secret, step, at)
	n, err := src.Nonce(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(n) != nonceEncodedSize || !strings.HasSuffix(n, "A") {
		t.Fatalf("nonce %q: want %d characters ending in A", n, nonceEncodedSize)
	}
	if _, ok := src.Check(bg, n); !ok {
		t.Fatalf("the issued nonce %q is refused", n)
	}
	body := n[:len(n)-1]
	for _, bad := range []string{
		body[:10] + "\n" + body[10:],
		body[:10] + "\r" + body[10:],
		"\n" + body,
		body + "\r",
	} {
		if len(bad) != len(n) {
			t.Fatalf("variant %q has %d characters, want %d", bad, len(bad), len(n))
		}
		if until, ok := src.Check(bg, bad); ok {
			t.Errorf("Check(%q) accepted (until %v), want refused", bad, until)
		}
	}
}
