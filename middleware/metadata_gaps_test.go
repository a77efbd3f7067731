package middleware

import "testing"

func TestMetadataPathGaps(t *testing.T) {
	tests := []struct {
		resource, want string
	}{
		{"https://api.example", "/.well-known/oauth-protected-resource"},
		{"https://api.example/", "/.well-known/oauth-protected-resource"},
		{"https://api.example/v1/", "/.well-known/oauth-protected-resource/v1"},
		// Not a URL: the metadata of the host's root.
		{"https://api.example/%zz", "/.well-known/oauth-protected-resource"},
		{"http://[::1", "/.well-known/oauth-protected-resource"},
		{"::", "/.well-known/oauth-protected-resource"},
	}
	for _, tt := range tests {
		if got := MetadataPath(tt.resource); got != tt.want {
			t.Errorf("MetadataPath(%q) = %q, want %q", tt.resource, got, tt.want)
		}
	}
}
