package dpop

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// sentinelReasons is every sentinel of errors.go with its reason, by name:
// TestReasonOfCoversEverySentinel fails when errors.go gains one that is
// not here, and TestReasonOf when ReasonOf gives it another reason.
var sentinelReasons = map[string]struct {
	err    error
	reason RefusalReason
}{
	"ErrMissingProof":           {ErrMissingProof, ReasonMissing},
	"ErrMultipleProofs":         {ErrMultipleProofs, ReasonMalformed},
	"ErrMalformed":              {ErrMalformed, ReasonMalformed},
	"ErrTooLarge":               {ErrTooLarge, ReasonMalformed},
	"ErrTyp":                    {ErrTyp, ReasonMalformed},
	"ErrAlgorithm":              {ErrAlgorithm, ReasonAlgorithm},
	"ErrKey":                    {ErrKey, ReasonKey},
	"ErrCrit":                   {ErrCrit, ReasonMalformed},
	"ErrSignature":              {ErrSignature, ReasonSignature},
	"ErrClaims":                 {ErrClaims, ReasonMalformed},
	"ErrJTI":                    {ErrJTI, ReasonMalformed},
	"ErrHTM":                    {ErrHTM, ReasonHTM},
	"ErrHTU":                    {ErrHTU, ReasonHTU},
	"ErrStale":                  {ErrStale, ReasonIAT},
	"ErrATH":                    {ErrATH, ReasonATH},
	"ErrNonce":                  {ErrNonce, ReasonNonce},
	"ErrReplay":                 {ErrReplay, ReasonReplay},
	"ErrKeyMismatch":            {ErrKeyMismatch, ReasonKeyMismatch},
	"ErrReplayCacheFull":        {ErrReplayCacheFull, ReasonCapacity},
	"ErrReplayCacheUnavailable": {ErrReplayCacheUnavailable, ReasonUnavailable},
	"ErrQuota":                  {ErrQuota, ReasonCapacity},
	"ErrNotChecked":             {ErrNotChecked, ReasonInternal},
}

// TestReasonOf: each sentinel, bare, wrapped in an *Error as the verifier
// returns it and wrapped again by a caller, gives its one reason.
func TestReasonOf(t *testing.T) {
	for name, m := range sentinelReasons {
		t.Run(name, func(t *testing.T) {
			code := CodeInvalidProof
			if m.reason == ReasonCapacity || m.reason == ReasonUnavailable {
				code = CodeServerError
			}
			for _, err := range []error{m.err, &Error{Code: code, Err: m.err}, fmt.Errorf("handler: %w", &Error{Code: code, Err: m.err})} {
				if got := ReasonOf(err); got != m.reason {
					t.Errorf("ReasonOf(%v) = %q, want %q", err, got, m.reason)
				}
			}
		})
	}
}

// TestReasonOfEdges: nil, an error without a sentinel, a nonce refused
// because the nonce source is down, and a quota refusal.
func TestReasonOfEdges(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want RefusalReason
	}{
		{"Nil", nil, ReasonNone},
		{"Foreign", errors.New("something else"), ReasonInternal},
		{"NonceSourceDown", &Error{Code: CodeServerError, Err: ErrNonce}, ReasonUnavailable},
		{"UseNonce", &Error{Code: CodeUseNonce, Err: ErrNonce}, ReasonNonce},
		{"Quota", &Error{Code: CodeTemporarilyUnavailable, Err: ErrQuota}, ReasonCapacity},
		{"CacheFull", &Error{Code: CodeServerError, Err: ErrReplayCacheFull}, ReasonCapacity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ReasonOf(tc.err); got != tc.want {
				t.Errorf("ReasonOf = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestReasonOfCoversEverySentinel reads the package's sources: every
// exported package-level Err variable must be in sentinelReasons (and so
// have a reason), and reasons must hold one entry per sentinel.
func TestReasonOfCoversEverySentinel(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	found := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if strings.HasPrefix(n.Name, "Err") {
						found[n.Name] = true
					}
				}
			}
		}
	}
	for name := range found {
		if _, ok := sentinelReasons[name]; !ok {
			t.Errorf("%s has no refusal reason: add it to reasons (reason.go) and to sentinelReasons", name)
		}
	}
	for name := range sentinelReasons {
		if !found[name] {
			t.Errorf("sentinelReasons names %s, which the package no longer declares", name)
		}
	}
	if len(reasons) != len(found) {
		t.Errorf("reasons has %d entries for %d sentinels", len(reasons), len(found))
	}
}
