package jose

import "testing"

func TestIsB64(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"", true},
		{"AQAB", true},
		{"AQ", true},    // one byte
		{"AQE", true},   // two bytes
		{"-_-_", true},  // the url-safe characters
		{"A", false},    // no whole byte
		{"AQ==", false}, // padding
		{"+/+/", false}, // the standard alphabet
		{"AR", false},   // bits set past the one byte
		{"AQF", false},  // bits set past the two bytes
		{"AQ B", false}, // white space
		{"AQ\nB", false},
	} {
		if got := IsB64(tc.s); got != tc.want {
			t.Errorf("IsB64(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
