package jose

import (
	"math"
	"strings"
	"time"
)

// MaxNumericDate is the latest NumericDate accepted anywhere in the kit:
// 9999-12-31T23:59:59Z, the last second that RFC 3339 (and time.Time's
// text forms) can write.
//
// The one NumericDate rule (RFC 7519 §2), for a proof's iat (RFC 9449 §4.2)
// as for an access token's exp, nbf and iat (RFC 9068 §2.2) and an
// introspection answer's exp (RFC 7662 §2.2): a JSON number, not a string,
// possibly fractional, from 0 (1970-01-01T00:00:00Z) to MaxNumericDate.
// Anything else is a malformed claim, not a date in the past or future: a
// negative date names no instant a token or proof could have been made at,
// and the bound keeps every conversion to time.Time exact.
const MaxNumericDate = 253402300799

// NumericDate reads a NumericDate under the rule of MaxNumericDate, and
// returns false for anything else. It does not allocate.
func NumericDate(raw []byte) (float64, bool) {
	f, ok := Number(raw)
	return f, ok && !math.IsNaN(f) && f >= 0 && f <= MaxNumericDate
}

// Time converts a NumericDate that NumericDate accepted.
func Time(secs float64) time.Time {
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9))
}

// Object is a JSON object's members by exact name, each value the raw JSON
// text, from ParseObject.
type Object map[string][]byte

// MemberError names a member that breaks the profile: of the wrong JSON
// type, out of range, or given twice.
type MemberError struct {
	Name      string
	Duplicate bool
}

// Error implements error; the text never holds the member's value, and
// holds its name only when it is a short plain identifier (a name from the
// input could otherwise carry anything into logs).
func (e *MemberError) Error() string {
	name := e.Name
	if len(name) == 0 || len(name) > 32 || strings.ContainsFunc(name, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-' || r == '.' || r == '#')
	}) {
		name = "a member"
	}
	if e.Duplicate {
		return name + " is given twice"
	}
	return name + " is malformed"
}

// ParseObject reads a JSON object strictly: member names are exact (after
// unescaping) and a name given twice is refused with a *MemberError
// (RFC 7515 §4, RFC 7519 §4 allow either refusing or keeping the last; the
// profile refuses). Anything but one JSON object is ErrNotObject.
func ParseObject(data []byte) (Object, error) {
	o := Object{}
	err := ForEachMember(data, func(name, value []byte) error {
		if _, dup := o[string(name)]; dup {
			return &MemberError{Name: string(name), Duplicate: true}
		}
		o[string(name)] = value
		return nil
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// StringMember returns the member name, which must be a JSON string if
// present; absent gives "".
func (o Object) StringMember(name string) (string, error) {
	raw, ok := o[name]
	if !ok {
		return "", nil
	}
	s, ok := String(raw)
	if !ok {
		return "", &MemberError{Name: name}
	}
	return s, nil
}

// BoolMember returns the member name, which must be true or false if
// present; absent gives present == false.
func (o Object) BoolMember(name string) (value, present bool, err error) {
	switch raw, ok := o[name]; {
	case !ok:
		return false, false, nil
	case string(raw) == "true":
		return true, true, nil
	case string(raw) == "false":
		return false, true, nil
	}
	return false, true, &MemberError{Name: name}
}

// AudienceMember returns the member name as an audience (RFC 7519 §4.1.3):
// a string, or an array of strings; absent gives nil.
func (o Object) AudienceMember(name string) ([]string, error) {
	raw, ok := o[name]
	if !ok {
		return nil, nil
	}
	if s, ok := String(raw); ok {
		return []string{s}, nil
	}
	if len(raw) == 0 || raw[0] != '[' {
		return nil, &MemberError{Name: name}
	}
	// raw is valid JSON: ParseObject's input passed json.Valid.
	out := []string{}
	err := forEachElement(raw, func(e []byte) error {
		s, ok := String(e)
		if !ok {
			return &MemberError{Name: name}
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DateMember returns the member name, a NumericDate under the rule of
// MaxNumericDate; absent gives the zero time.
func (o Object) DateMember(name string) (time.Time, error) {
	raw, ok := o[name]
	if !ok {
		return time.Time{}, nil
	}
	f, ok := NumericDate(raw)
	if !ok {
		return time.Time{}, &MemberError{Name: name}
	}
	return Time(f), nil
}

// CnfJKT returns the key binding of the cnf member (RFC 7800 §3.1): absent
// gives ""; present, cnf must be an object whose only member is a non-empty
// string jkt (RFC 9449 §6.1). Any other confirmation method is refused,
// since the kit cannot enforce it and must not treat the token as unbound.
func (o Object) CnfJKT() (string, error) {
	raw, ok := o["cnf"]
	if !ok {
		return "", nil
	}
	cnf, err := ParseObject(raw)
	if err != nil || len(cnf) != 1 {
		return "", &MemberError{Name: "cnf"}
	}
	jkt, err := cnf.StringMember("jkt")
	if err != nil || jkt == "" {
		return "", &MemberError{Name: "cnf"}
	}
	return jkt, nil
}

// forEachElement calls fn with each element of the JSON array raw, which
// json.Valid has accepted (a value ParseObject or ForEachMember gave).
func forEachElement(raw []byte, fn func(e []byte) error) error {
	i := skipSpace(raw, 1)
	if raw[i] == ']' {
		return nil
	}
	for {
		end := valueEnd(raw, i)
		if err := fn(raw[i:end]); err != nil {
			return err
		}
		i = skipSpace(raw, end)
		if raw[i] == ']' {
			return nil
		}
		i = skipSpace(raw, i+1)
	}
}
