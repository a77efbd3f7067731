package dpop

import (
	"errors"
	"fmt"
	"testing"
)

// LogAttrs gives "cause", and the htu pair only for an *Error (possibly
// wrapped) that has an Expected or a Received URL.
func TestLogAttrs(t *testing.T) {
	plain := errors.New("dpop: something else")
	noURLs := invalid(ErrSignature, "invalid signature")
	both := &Error{Code: CodeInvalidProof, Err: ErrHTU, Expected: "https://a.example/x", Received: "https://b.example/x"}
	expectedOnly := &Error{Code: CodeInvalidProof, Err: ErrHTU, Expected: "https://a.example/x"}
	receivedOnly := &Error{Code: CodeInvalidProof, Err: ErrHTU, Received: "https://b.example/x"}
	wrapped := fmt.Errorf("middleware: %w", both)
	tests := []struct {
		name string
		err  error
		want []any
	}{
		{"nil", nil, []any{"cause", nil}},
		{"not an *Error", plain, []any{"cause", plain}},
		{"*Error without URLs", noURLs, []any{"cause", noURLs}},
		{"both URLs", both, []any{"cause", both, "htu_expected", both.Expected, "htu_received", both.Received}},
		{"Expected only", expectedOnly, []any{"cause", expectedOnly, "htu_expected", expectedOnly.Expected, "htu_received", ""}},
		{"Received only", receivedOnly, []any{"cause", receivedOnly, "htu_expected", "", "htu_received", receivedOnly.Received}},
		{"wrapped", wrapped, []any{"cause", wrapped, "htu_expected", both.Expected, "htu_received", both.Received}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := LogAttrs(tc.err)
			if len(got) != len(tc.want) {
				t.Fatalf("LogAttrs = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("LogAttrs[%d] = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// Error() is the code, then ": " and the description when there is one.
func TestErrorString(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{&Error{Code: CodeUseNonce, Err: ErrNonce}, "use_dpop_nonce"},
		{&Error{Code: CodeInvalidProof, Description: "proof replayed", Err: ErrReplay}, "invalid_dpop_proof: proof replayed"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}
