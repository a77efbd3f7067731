package dpop

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// Strict, allocation-light reading of the flat JSON objects a proof is made
// of (the JOSE header, the JWK and the claims set). encoding/json alone would
// match member names case-insensitively, keep the last of duplicated members
// and turn strings into numbers where asked; RFC 7515 §4 and RFC 7519 §4 want
// exact names and no duplicates, and RFC 9449 §4.3 wants the claim types as
// specified. The input is first checked with json.Valid, so the walk below
// only has to find boundaries, in one linear pass.

var errJSON = errors.New("dpop: not a JSON object")

// forEachMember calls fn with the name and the raw value of each member of the
// JSON object data. The name is unescaped; the value is the exact JSON text.
func forEachMember(data []byte, fn func(name, value []byte) error) error {
	if !json.Valid(data) {
		return errJSON
	}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errJSON
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

// jsonString returns the value of a JSON string, and false for any other type.
func jsonString(raw []byte) (string, bool) {
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

// jsonNumber returns the value of a JSON number, and false for any other type
// (a number inside a string is not a number).
func jsonNumber(raw []byte) (float64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}
