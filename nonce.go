package dpop

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"
)

// NonceSource issues and checks server-provided nonces (RFC 9449 §8, §9).
// When a [Verifier] has one, every proof must carry a nonce the source
// accepts, and a proof without one is answered with use_dpop_nonce and a
// fresh nonce for the DPoP-Nonce header.
type NonceSource interface {
	// Nonce returns the nonce to hand out now.
	Nonce(ctx context.Context) (string, error)
	// Check reports whether nonce was issued by this source and is still
	// acceptable, and until when it stays acceptable.
	Check(ctx context.Context, nonce string) (validUntil time.Time, ok bool)
}

// DefaultNonceStep is the default rotation period of an [HMACNonceSource]: a
// nonce is accepted for two to four minutes. With nonces, a proof's replay
// entry lives as long as its nonce is accepted (RFC 9449 §11.1), so the step
// sets how much of the replay cache each proof takes: a short step keeps
// that close to the entry life without nonces (70 s), while a client that
// has been idle for a few minutes needs one use_dpop_nonce round trip.
const DefaultNonceStep = 2 * time.Minute

// minNonceSecret is the shortest secret an HMACNonceSource accepts.
const minNonceSecret = 32

// HMACNonceOptions configures [NewHMACNonceSource].
type HMACNonceOptions struct {
	// Secret keys the HMAC. Required, at least 32 bytes of random data, and
	// the same on every instance that must accept the others' nonces.
	Secret []byte
	// PreviousSecrets are still accepted by Check (never used to issue), so
	// that the secret can be replaced without refusing nonces in flight.
	PreviousSecrets [][]byte
	// Step is how often the nonce changes. Default DefaultNonceStep. A nonce
	// is accepted while the current step is the one it was issued in or a
	// neighbouring one, so for between one and two steps after issue (and
	// instances whose clocks differ by less than a step accept each other's).
	Step time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// HMACNonceSource is a stateless [NonceSource]: a nonce is a time-step
// counter and an HMAC-SHA-256 of it under a secret shared by all instances, so
// nothing needs to be stored or shared beyond the secret (RFC 9449 §8).
// Nonces are unpredictable without the secret, change every step, and are
// compared in constant time. It is safe for concurrent use.
type HMACNonceSource struct {
	secrets [][]byte // secrets[0] issues
	step    time.Duration
	now     func() time.Time
	current atomic.Pointer[issuedNonce]
}

type issuedNonce struct {
	counter int64
	value   string
}

const (
	nonceMACSize = 16
	nonceRawSize = 8 + nonceMACSize
)

var nonceEncodedSize = base64.RawURLEncoding.EncodedLen(nonceRawSize)

// NewHMACNonceSource returns a nonce source, or an error if the options are
// unusable.
func NewHMACNonceSource(opts HMACNonceOptions) (*HMACNonceSource, error) {
	if len(opts.Secret) < minNonceSecret {
		return nil, errors.New("dpop: nonce secret must be at least 32 bytes")
	}
	for _, s := range opts.PreviousSecrets {
		if len(s) < minNonceSecret {
			return nil, errors.New("dpop: previous nonce secrets must be at least 32 bytes")
		}
	}
	if opts.Step < 0 {
		return nil, errors.New("dpop: negative nonce step")
	}
	if opts.Step == 0 {
		opts.Step = DefaultNonceStep
	}
	if opts.Step < time.Second {
		return nil, errors.New("dpop: nonce step shorter than a second")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	secrets := make([][]byte, 0, 1+len(opts.PreviousSecrets))
	secrets = append(secrets, append([]byte(nil), opts.Secret...))
	for _, s := range opts.PreviousSecrets {
		secrets = append(secrets, append([]byte(nil), s...))
	}
	return &HMACNonceSource{secrets: secrets, step: opts.Step, now: opts.Now}, nil
}

func (s *HMACNonceSource) counter() int64 {
	return s.now().UnixNano() / int64(s.step)
}

func nonceMAC(secret []byte, counter int64) []byte {
	m := hmac.New(sha256.New, secret)
	var msg [len("dpopkit nonce v1\x00") + 8]byte
	n := copy(msg[:], "dpopkit nonce v1\x00")
	binary.BigEndian.PutUint64(msg[n:], uint64(counter))
	m.Write(msg[:])
	return m.Sum(nil)[:nonceMACSize]
}

// Nonce implements [NonceSource]. It never fails.
func (s *HMACNonceSource) Nonce(context.Context) (string, error) {
	c := s.counter()
	if cur := s.current.Load(); cur != nil && cur.counter == c {
		return cur.value, nil
	}
	var raw [nonceRawSize]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(c))
	copy(raw[8:], nonceMAC(s.secrets[0], c))
	v := base64.RawURLEncoding.EncodeToString(raw[:])
	s.current.Store(&issuedNonce{counter: c, value: v})
	return v, nil
}

// Check implements [NonceSource].
func (s *HMACNonceSource) Check(_ context.Context, nonce string) (time.Time, bool) {
	if len(nonce) != nonceEncodedSize {
		return time.Time{}, false
	}
	var raw [nonceRawSize]byte
	n, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(nonce))
	if err != nil || n != nonceRawSize {
		return time.Time{}, false
	}
	c := int64(binary.BigEndian.Uint64(raw[:8]))
	now := s.counter()
	if c < now-1 || c > now+1 {
		return time.Time{}, false
	}
	ok := false
	for _, secret := range s.secrets {
		// Every secret is tried, so the time taken does not tell which matched.
		if hmac.Equal(raw[8:], nonceMAC(secret, c)) {
			ok = true
		}
	}
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, (c+2)*int64(s.step)), true
}
