package dpop

import (
	"bytes"
	"encoding/json"
	"testing"
)

func jsonValid(b []byte) bool { return json.Valid(b) }

// jsonObjectNames lists the member names of a JSON object in order, using
// encoding/json's tokenizer: the reference forEachMember is checked against.
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
		err := forEachMember([]byte(tc.in), func(name, _ []byte) error {
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
	if _, ok := jsonString([]byte(`1`)); ok {
		t.Error("number read as string")
	}
	if _, ok := jsonString([]byte(`null`)); ok {
		t.Error("null read as string")
	}
	if _, ok := jsonNumber([]byte(`"1"`)); ok {
		t.Error("string read as number")
	}
	if s, ok := jsonString([]byte(`"a\u0062\n"`)); !ok || s != "ab\n" {
		t.Errorf("escaped string %q", s)
	}
	if n, ok := jsonNumber([]byte(`-1.5e2`)); !ok || n != -150 {
		t.Errorf("number %v", n)
	}
}
