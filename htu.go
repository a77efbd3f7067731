package dpop

import (
	"errors"
	"net/netip"
	"strings"
)

// maxHTULength is the longest input, in bytes, that [NormalizeHTU] accepts.
// Longer values are refused before any parsing is done.
const maxHTULength = 8192

// htuStackBuffer is the size of the buffer NormalizeHTU builds its result in
// before it spills to the heap. Typical request URIs fit, so an input that is
// already in normal form is returned without allocating.
const htuStackBuffer = 512

// Causes of a refused htu. The texts are fixed and never contain any part of
// the input, which is attacker-controlled.
var (
	errHTUTooLong     = errors.New("dpop: htu: longer than 8192 bytes")
	errHTUNoScheme    = errors.New("dpop: htu: not an absolute URI: missing scheme")
	errHTUScheme      = errors.New("dpop: htu: scheme is not http or https")
	errHTUNoAuthority = errors.New("dpop: htu: missing \"//\" authority")
	errHTUUserinfo    = errors.New("dpop: htu: invalid character in userinfo")
	errHTUNoHost      = errors.New("dpop: htu: empty host")
	errHTUHost        = errors.New("dpop: htu: invalid character in host")
	errHTUIPv6        = errors.New("dpop: htu: invalid IPv6 literal")
	errHTUPort        = errors.New("dpop: htu: invalid port")
	errHTUPortRange   = errors.New("dpop: htu: port out of range")
	errHTUPercent     = errors.New("dpop: htu: invalid percent-encoding")
	errHTUPath        = errors.New("dpop: htu: invalid character in path")
)

// Character classes of RFC 3986 §2.2 and §2.3, plus the three extra
// characters that some components allow.
const (
	htuUnreserved = 1 << iota // ALPHA / DIGIT / "-" / "." / "_" / "~"
	htuSubDelim               // "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="
	htuColon                  // ":"
	htuAt                     // "@"
	htuSlash                  // "/"

	// reg-name, RFC 3986 §3.2.2 (pct-encoded is handled separately).
	htuHostChars = htuUnreserved | htuSubDelim
	// userinfo, RFC 3986 §3.2.1.
	htuUserinfoChars = htuHostChars | htuColon
	// path-abempty, RFC 3986 §3.3: "/" and pchar.
	htuPathChars = htuUserinfoChars | htuAt | htuSlash
)

// htuClass maps every octet to its character classes; zero means the octet
// may only appear percent-encoded.
var htuClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = htuUnreserved
		t[c-'a'+'A'] = htuUnreserved
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = htuUnreserved
	}
	for _, c := range "-._~" {
		t[c] = htuUnreserved
	}
	for _, c := range "!$&'()*+,;=" {
		t[c] = htuSubDelim
	}
	t[':'] = htuColon
	t['@'] = htuAt
	t['/'] = htuSlash
	return t
}()

const htuUpperHex = "0123456789ABCDEF"

// NormalizeHTU returns the normal form of raw, an absolute http or https URI,
// without its query and fragment. Two URIs identify the same resource for the
// purposes of the DPoP htu check (RFC 9449 §4.2, §4.3 step 9) when their
// normal forms are byte-for-byte equal.
//
// raw is treated as hostile network input. It is parsed by hand rather than
// with net/url, whose leniency and path decoding are not wanted here. Input
// longer than 8192 bytes is refused; otherwise the work done and the memory
// allocated are linear in the length of raw, and no input causes a panic. An
// input already in normal form (up to a few hundred bytes long) is returned
// without allocating. Error texts never repeat any part of raw.
//
// The normalisation is the syntax-based and scheme-based normalisation of
// RFC 3986 §6.2.2 and §6.2.3, as RFC 9110 §4.2.3 describes it for http and
// https URIs:
//
//   - Everything from the first "?" or "#" on is dropped, whatever it holds
//     (RFC 9449 §4.2: htu carries no query or fragment).
//   - The scheme (RFC 3986 §3.1) must be present and be "http" or "https" in
//     any case; it is written in lower case. It must be followed by "//" and
//     an authority (RFC 3986 §3.2): relative references and forms such as
//     "http:foo" are refused.
//   - An optional userinfo before "@" (RFC 3986 §3.2.1) is kept as it is,
//     apart from percent-encoding normalisation; its characters must be
//     unreserved, sub-delims, ":" or percent-encoded.
//   - The host (RFC 3986 §3.2.2) must not be empty and is written in lower
//     case (§6.2.2.1). It is either a bracketed IPv6 literal, which must parse
//     as an IPv6 address without a zone and is only lower-cased, not otherwise
//     rewritten, or a reg-name of unreserved, sub-delims and percent-encoded
//     characters (so IPv4 addresses are accepted, IPvFuture literals and raw
//     non-ASCII names are not; internationalised names must be in their
//     A-label form).
//   - The port (RFC 3986 §3.2.3) is optional and made of digits only; an
//     empty port is the same as none. Leading zeros are dropped, values above
//     65535 are refused, and the port is omitted when it is the scheme's
//     default, 80 for http and 443 for https (§6.2.3).
//   - In every component, each "%" must be followed by two hexadecimal
//     digits. A percent-encoded unreserved character is replaced by the
//     character itself; any other percent-encoded octet is kept encoded with
//     upper-case hexadecimal digits (RFC 3986 §6.2.2.1, §6.2.2.2). So "%7e"
//     becomes "~" while "%2f" becomes "%2F" and is never treated as a "/".
//   - The path (RFC 3986 §3.3) may contain unreserved, sub-delims, ":", "@",
//     "/" and percent-encoded octets; any other byte, such as a space, a
//     control character, a backslash, a quote or a non-ASCII byte, is an
//     error. After percent-encoding normalisation, "." and ".." segments are
//     removed as in RFC 3986 §5.2.4 (§6.2.2.3); an empty path becomes "/"
//     (§6.2.3).
//
// The result is scheme "://" [userinfo "@"] host [":" port] path. No other
// equivalences are applied: for example a trailing dot in a host name,
// different spellings of the same IPv6 address, or an empty userinfo are
// significant.
func NormalizeHTU(raw string) (string, error) {
	if len(raw) > maxHTULength {
		return "", errHTUTooLong
	}
	s := raw
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}

	colon := strings.IndexByte(s, ':')
	if colon < 0 || !validHTUScheme(s[:colon]) {
		return "", errHTUNoScheme
	}
	var https bool
	switch scheme := s[:colon]; {
	case asciiEqualFoldHTU(scheme, "http"):
	case asciiEqualFoldHTU(scheme, "https"):
		https = true
	default:
		return "", errHTUScheme
	}
	rest := s[colon+1:]
	if !strings.HasPrefix(rest, "//") {
		return "", errHTUNoAuthority
	}
	rest = rest[2:]
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}

	// The result is never longer than s plus the "/" of an empty path, so
	// out needs at most one allocation.
	var stack [htuStackBuffer]byte
	out := stack[:0]
	if len(s)+1 > len(stack) {
		out = make([]byte, 0, len(s)+1)
	}
	if https {
		out = append(out, "https://"...)
	} else {
		out = append(out, "http://"...)
	}
	var err error

	// userinfo: it cannot contain a raw "@", so the first one ends it, and
	// any further "@" is refused as a character of the host.
	if i := strings.IndexByte(authority, '@'); i >= 0 {
		if out, err = appendHTUComponent(out, authority[:i], htuUserinfoChars, false, errHTUUserinfo); err != nil {
			return "", err
		}
		out = append(out, '@')
		authority = authority[i+1:]
	}

	// host
	var port string
	if authority == "" {
		return "", errHTUNoHost
	}
	if authority[0] == '[' {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return "", errHTUIPv6
		}
		if out, err = appendHTUIPv6(out, authority[1:end]); err != nil {
			return "", err
		}
		if after := authority[end+1:]; after != "" {
			if after[0] != ':' {
				return "", errHTUHost
			}
			port = after[1:]
		}
	} else {
		host := authority
		// A reg-name cannot contain ":", so the first one starts the port.
		if i := strings.IndexByte(authority, ':'); i >= 0 {
			host, port = authority[:i], authority[i+1:]
		}
		if host == "" {
			return "", errHTUNoHost
		}
		if out, err = appendHTUComponent(out, host, htuHostChars, true, errHTUHost); err != nil {
			return "", err
		}
	}

	// port
	if port != "" {
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return "", errHTUPort
			}
		}
		digits := strings.TrimLeft(port, "0")
		if len(digits) > 5 {
			return "", errHTUPortRange
		}
		n := 0
		for i := 0; i < len(digits); i++ {
			n = n*10 + int(digits[i]-'0')
		}
		if n > 65535 {
			return "", errHTUPortRange
		}
		if (https && n != 443) || (!https && n != 80) {
			out = append(out, ':')
			if digits == "" {
				out = append(out, '0')
			} else {
				out = append(out, digits...)
			}
		}
	}

	// path
	start := len(out)
	if out, err = appendHTUComponent(out, path, htuPathChars, false, errHTUPath); err != nil {
		return "", err
	}
	out = out[:start+len(removeHTUDotSegments(out[start:]))]
	if len(out) == start {
		out = append(out, '/')
	}

	if string(out) == s {
		return s, nil
	}
	return string(out), nil
}

// EqualHTU reports whether a and b are the same http or https URI once
// normalised by [NormalizeHTU] (RFC 3986 §6.2.2, §6.2.3), ignoring query and
// fragment as the DPoP htu check does (RFC 9449 §4.3 step 9). It returns false
// if either of them cannot be normalised, including when both are invalid.
func EqualHTU(a, b string) bool {
	na, err := NormalizeHTU(a)
	if err != nil {
		return false
	}
	nb, err := NormalizeHTU(b)
	if err != nil {
		return false
	}
	return na == nb
}

// validHTUScheme reports whether s has the syntax of a scheme,
// ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1).
func validHTUScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// asciiEqualFoldHTU compares s with lower, which is in lower case, ignoring
// ASCII case only. strings.EqualFold is avoided on purpose: it applies Unicode
// folding, under which for instance U+017F folds to "s".
func asciiEqualFoldHTU(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lowerHTU(s[i]) != lower[i] {
			return false
		}
	}
	return true
}

func lowerHTU(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

func unhexHTU(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendHTUComponent appends s to dst after checking that every byte of s is
// either in one of the classes of allowed or part of a well-formed
// percent-encoding, which it normalises (RFC 3986 §6.2.2.1, §6.2.2.2). With
// lower set, letters are lower-cased too, including decoded ones. bad is the
// error for a byte that is not allowed.
func appendHTUComponent(dst []byte, s string, allowed uint8, lower bool, bad error) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if len(s)-i < 3 {
				return dst, errHTUPercent
			}
			hi, ok1 := unhexHTU(s[i+1])
			lo, ok2 := unhexHTU(s[i+2])
			if !ok1 || !ok2 {
				return dst, errHTUPercent
			}
			i += 2
			if d := hi<<4 | lo; htuClass[d]&htuUnreserved != 0 {
				c = d
			} else {
				dst = append(dst, '%', htuUpperHex[hi], htuUpperHex[lo])
				continue
			}
		} else if htuClass[c]&allowed == 0 {
			return dst, bad
		}
		if lower {
			c = lowerHTU(c)
		}
		dst = append(dst, c)
	}
	return dst, nil
}

// appendHTUIPv6 appends the bracketed IPv6 literal whose content is lit, in
// lower case, after checking that it is a valid IPv6 address (RFC 3986
// §3.2.2, RFC 4291 §2.2). Only hexadecimal digits, ":" and "." are allowed,
// which rules out zone identifiers and IPvFuture.
func appendHTUIPv6(dst []byte, lit string) ([]byte, error) {
	if lit == "" || len(lit) > len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255") {
		return dst, errHTUIPv6
	}
	for i := 0; i < len(lit); i++ {
		c := lit[i]
		if _, ok := unhexHTU(c); !ok && c != ':' && c != '.' {
			return dst, errHTUIPv6
		}
	}
	if a, err := netip.ParseAddr(lit); err != nil || !a.Is6() {
		return dst, errHTUIPv6
	}
	dst = append(dst, '[')
	for i := 0; i < len(lit); i++ {
		dst = append(dst, lowerHTU(lit[i]))
	}
	return append(dst, ']'), nil
}

// removeHTUDotSegments removes the "." and ".." segments of p, which is empty
// or starts with "/", as RFC 3986 §5.2.4 does, and returns the shortened
// slice. It works in place and in linear time: the output never gets ahead of
// the input, and a ".." scans back only over bytes it then discards.
func removeHTUDotSegments(p []byte) []byte {
	w := 0 // end of the output, p[:w]
	for r := 0; r < len(p); {
		// p[r] is the "/" that starts the next segment.
		end := r + 1
		for end < len(p) && p[end] != '/' {
			end++
		}
		seg := p[r+1 : end]
		last := end == len(p)
		switch {
		case len(seg) == 1 && seg[0] == '.':
			if last {
				p[w] = '/'
				w++
			}
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			// Drop the last output segment and the "/" before it.
			for w > 0 {
				w--
				if p[w] == '/' {
					break
				}
			}
			if last {
				p[w] = '/'
				w++
			}
		default:
			w += copy(p[w:], p[r:end])
		}
		r = end
	}
	return p[:w]
}
