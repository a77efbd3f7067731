package jose

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

// The host's claims: registered names refused, the rest kept in compact
// JSON under a size bound; read back from an object without the registered
// members.
func TestHostClaims(t *testing.T) {
	for _, tc := range []struct {
		name   string
		claims map[string]any
		max    int
		want   string // "" with ok: nil
		ok     bool
	}{
		{"none", nil, 100, "", true},
		{"empty", map[string]any{}, 100, "", true},
		{"two", map[string]any{"tenant": "t1", "roles": []string{"a"}}, 100, `{"roles":["a"],"tenant":"t1"}`, true},
		{"registered iss", map[string]any{"iss": "x"}, 100, "", false},
		{"registered token_type", map[string]any{"token_type": "x"}, 100, "", false},
		{"not JSON", map[string]any{"n": math.NaN()}, 100, "", false},
		{"too large", map[string]any{"big": strings.Repeat("x", 100)}, 100, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := CheckHostClaims(tc.claims, tc.max)
			if (err == nil) != tc.ok || string(b) != tc.want {
				t.Fatalf("got %s, %v; want %s ok=%v", b, err, tc.want, tc.ok)
			}
		})
	}
	o, err := ParseObject([]byte(`{"iss":"a","aud":["b"],"tenant":"t1","roles":["x",1],"active":true}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := o.HostClaims()
	want := map[string]any{"tenant": "t1", "roles": []any{"x", float64(1)}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("HostClaims %v, %v; want %v", got, err, want)
	}
	if o, _ := ParseObject([]byte(`{"iss":"a"}`)); o != nil {
		if m, err := o.HostClaims(); m != nil || err != nil {
			t.Errorf("no host claims: got %v, %v", m, err)
		}
	}
}

func TestAppendMembers(t *testing.T) {
	for _, tc := range []struct{ base, extra, want string }{
		{`{"a":1}`, `{"b":2}`, `{"a":1,"b":2}`},
		{`{"a":1}`, ``, `{"a":1}`},
		{`{"a":1}`, `{}`, `{"a":1}`},
		{`{}`, `{"b":2}`, `{"b":2}`},
	} {
		got := AppendMembers([]byte(tc.base), []byte(tc.extra))
		if string(got) != tc.want || !json.Valid(got) {
			t.Errorf("AppendMembers(%s, %s) = %s, want %s", tc.base, tc.extra, got, tc.want)
		}
	}
}
