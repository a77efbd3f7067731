package jose

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// Strict, allocation-light reading of the flat JSON objects JOSE is made of
// (headers, JWKs, claims sets). encoding/json alone would match member names
// case-insensitively, keep the last of duplicated members and turn strings
// into numbers where asked; RFC 7515 §4 and RFC 7519 §4 want exact names and
// no duplicates, and RFC 9449 §4.3 and RFC 9068 §4 want the claim types as
// specified. The input is first checked with json.Valid, so the walk below
// only has to find boundaries, in one linear pass.

// ErrNotObject: the data is not one JSON object.
var ErrNotObject = errors.New("not a JSON object")

// ForEachMember calls fn with the name and the raw value of each member of
// the JSON object data, in order. The name is unescaped; the value is the
// exact JSON text. An error from fn stops the walk and is returned; data
// that is not one JSON object gives ErrNotObject. It does not allocate for
// names without escapes.
func ForEachMember(data []byte, fn func(name, value []byte) error) error {
	if !json.Valid(data) {
		return ErrNotObject
	}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return ErrNotObject
	}
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return nil
	}
	for {
		end := stringEnd(data, i)
		name, err := jsonName(data[i:end])
		if err != nil {
			return err
		}
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // the ':'
		vend := valueEnd(data, i)
		if err := fn(name, data[i:vend]); err != nil {
			return err
		}
		i = skipSpace(data, vend)
		if data[i] == '}' {
			return nil
		}
		i = skipSpace(data, i+1) // the ','
	}
}

// ForEachKnown walks the JSON object data like ForEachMember, but calls fn
// only for the members whose names are in names (at most 32), with the
// index of the name: a name given twice is refused with a *MemberError
// (RFC 7515 §4, RFC 7519 §4), other members are ignored. seen has bit i set
// for each names[i] present. It does not allocate but for an error.
func ForEachKnown(data []byte, names []string, fn func(i int, value []byte) error) (seen uint32, err error) {
	err = ForEachMember(data, func(name, value []byte) error {
		for i, n := range names {
			if string(name) != n {
				continue
			}
			if seen&(1<<i) != 0 {
				return &MemberError{Name: n, Duplicate: true}
			}
			seen |= 1 << i
			return fn(i, value)
		}
		return nil
	})
	return seen, err
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the string starting at data[i] == '"'.
func stringEnd(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(data)
}

// valueEnd returns the index just past the value starting at data[i].
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = stringEnd(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(data)
	default:
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return len(data)
	}
}

// jsonName unescapes a member name (quoted JSON string). Without escapes it
// returns a slice of raw, so that callers can switch on string(name) without
// allocating.
func jsonName(raw []byte) ([]byte, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return []byte(s), err
}

// String returns the value of a JSON string, and false for any other type.
func String(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// Number returns the value of a JSON number, and false for any other type
// (a number inside a string is not a number).
func Number(raw []byte) (float64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}
