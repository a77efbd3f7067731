package jose

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func jsonValid(b []byte) bool { return json.Valid(b) }

// jsonObjectNames lists the member names of a JSON object in order, using
// encoding/json's tokenizer: the reference ForEachMember is checked against.
func jsonObjectNames(data []byte) ([]string, bool) {
	if !json.Valid(data) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var names []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		names = append(names, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, false
		}
	}
	return names, true
}

func TestForEachMember(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{`{}`, nil, true},
		{` { "a" : 1 , "b":"x" } `, []string{"a", "b"}, true},
		{`{"a":{"b":[1,"]}",{"c":"\""}]},"d":-1.5e3}`, []string{"a", "d"}, true},
		{`{"\u0074yp":"x"}`, []string{"typ"}, true},
		{`[]`, nil, false},
		{`{"a":1,}`, nil, false},
		{`{"a":1}{"b":2}`, nil, false},
		{``, nil, false},
		{`null`, nil, false},
	} {
		var got []string
		err := ForEachMember([]byte(tc.in), func(name, _ []byte) error {
			got = append(got, string(name))
			return nil
		})
		if (err == nil) != tc.ok || len(got) != len(tc.want) {
			t.Errorf("%s: names %q err %v", tc.in, got, err)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: names %q, want %q", tc.in, got, tc.want)
			}
		}
	}
}

func TestJSONTypesAreNotCoerced(t *testing.T) {
	if _, ok := String([]byte(`1`)); ok {
		t.Error("number read as string")
	}
	if _, ok := String([]byte(`null`)); ok {
		t.Error("null read as string")
	}
	if _, ok := Number([]byte(`"1"`)); ok {
		t.Error("string read as number")
	}
	if s, ok := String([]byte(`"a\u0062\n"`)); !ok || s != "ab\n" {
		t.Errorf("escaped string %q", s)
	}
	if n, ok := Number([]byte(`-1.5e2`)); !ok || n != -150 {
		t.Errorf("number %v", n)
	}
}

// FuzzJSONMembers checks the strict object reader against encoding/json: for
// any valid object, it visits exactly the members encoding/json would see.
func FuzzJSONMembers(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":"b\"}","c":[1,{"d":"]"}],"e":null}`, `{"\u0061":true , "b" : {"c":{}}}`, `[1]`, `"x"`, `{"a":1}x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var names []string
		err := ForEachMember(data, func(name, value []byte) error {
			names = append(names, replaceInvalidUTF8(string(name)))
			if !jsonValid(value) {
				t.Fatalf("member %q has invalid value %q", name, value)
			}
			return nil
		})
		want, ok := jsonObjectNames(data)
		if ok != (err == nil) {
			t.Fatalf("ForEachMember err %v, encoding/json object %v", err, ok)
		}
		if ok && strings.Join(names, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("names %q, want %q", names, want)
		}
	})
}

// replaceInvalidUTF8 does what encoding/json does to invalid UTF-8 in a
// string: each bad byte becomes U+FFFD. Our reader keeps the raw bytes, which
// then match no known member name.
func replaceInvalidUTF8(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r) // ranging over a string yields U+FFFD per invalid byte
	}
	return b.String()
}
