package jose

import (
	"encoding/base64"
	"errors"
	"strings"
)

// B64 is the strict unpadded base64url of JWS segments (RFC 7515 §2): no
// padding, and no bits set past the end of the data.
var B64 = base64.RawURLEncoding.Strict()

// Refusals of a JWS by its form.
var (
	// ErrCompact: not three non-empty segments of base64url characters
	// separated by two dots (RFC 7515 §7.1). The JSON serialization
	// (§7.2), whitespace and padding all end here.
	ErrCompact = errors.New("not a compact JWS")
	// ErrHeaderBase64: the header segment does not decode.
	ErrHeaderBase64 = errors.New("header is not base64url")
	// ErrCrit: a crit header; no extension is understood (RFC 7515
	// §4.1.11).
	ErrCrit = errors.New("crit header not supported")
	// ErrB64: a b64 header (RFC 7797 §3): unencoded payloads are not
	// supported, and b64 without crit would be ignored by some parsers.
	ErrB64 = errors.New("b64 header not supported")
)

// base64url marks the bytes of the base64url alphabet (RFC 4648 §5).
var base64url = func() (t [256]bool) {
	for _, r := range b64Alphabet {
		t[r] = true
	}
	return t
}()

// b64Alphabet is the base64url alphabet in value order.
const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// IsB64 reports whether s is strict unpadded base64url (RFC 7515 §2, as
// RFC 7518 §6 requires of JWK members): nothing but the alphabet, a length
// that encodes whole bytes, and no bits set past the end of the data. It
// does not allocate.
func IsB64(s string) bool {
	if len(s)%4 == 1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !base64url[s[i]] {
			return false
		}
	}
	if len(s) == 0 {
		return true
	}
	last := strings.IndexByte(b64Alphabet, s[len(s)-1])
	switch len(s) % 4 {
	case 2:
		return last&0xf == 0
	case 3:
		return last&0x3 == 0
	}
	return true
}

// Split splits a JWS in compact serialization (RFC 7515 §7.1) into its
// header, payload and signature segments: exactly two dots, three non-empty
// segments, and nothing but base64url characters (RFC 7515 §2: no padding,
// no whitespace; Go's decoder would skip line breaks). It does not
// allocate; the segments are still to be decoded with B64.
func Split(jws string) (header, payload, signature string, ok bool) {
	d1, d2 := -1, -1
	for i := 0; i < len(jws); i++ {
		c := jws[i]
		if base64url[c] {
			continue
		}
		if c != '.' || d2 >= 0 {
			return "", "", "", false
		}
		if d1 < 0 {
			d1 = i
		} else {
			d2 = i
		}
	}
	if d1 <= 0 || d2 <= d1+1 || d2 == len(jws)-1 {
		return "", "", "", false
	}
	return jws[:d1], jws[d1+1 : d2], jws[d2+1:], true
}

// Header is what the profile reads of a protected header (RFC 7515 §4.1).
// Typ, Alg and Kid are "" when absent or not JSON strings, so that a
// mistyped member fails the same check as a missing one.
type Header struct {
	Typ, Alg, Kid string
	// JWK is the raw jwk member (RFC 7515 §4.1.3), nil when absent.
	JWK []byte
}

// headerNames are the header parameters the profile reads (RFC 7515 §4.1).
var headerNames = []string{"typ", "alg", "kid", "jwk", "crit", "b64"}

// ParseHeader decodes the header segment of a compact JWS: B64, one JSON
// object, typ, alg, kid and jwk at most once each (else a *MemberError),
// and neither crit (ErrCrit) nor b64 (ErrB64). Other members are ignored.
// A segment that does not decode is ErrHeaderBase64, one that is not an
// object ErrNotObject.
func ParseHeader(segment string) (Header, error) {
	var h Header
	raw, err := B64.DecodeString(segment)
	if err != nil {
		return h, ErrHeaderBase64
	}
	dst := [...]*string{&h.Typ, &h.Alg, &h.Kid}
	_, err = ForEachKnown(raw, headerNames, func(i int, value []byte) error {
		switch i {
		case 3:
			h.JWK = value
		case 4:
			return ErrCrit
		case 5:
			return ErrB64
		default:
			*dst[i], _ = String(value)
		}
		return nil
	})
	return h, err
}
