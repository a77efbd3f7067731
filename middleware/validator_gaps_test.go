package middleware

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// tokensAnswering is an access token store that answers every lookup with
// one error.
type tokensAnswering struct {
	store.AccessTokenStore
	err error
}

func (s tokensAnswering) GetAccessToken(context.Context, store.TokenHash) (*store.AccessToken, error) {
	return nil, s.err
}

func TestStoreValidatorGapsRefusals(t *testing.T) {
	down := errors.New("connection refused")
	tests := []struct {
		name      string
		validator StoreValidator
		want      []error
		notWant   error
	}{
		{"no store", StoreValidator{}, []error{ErrValidatorUnavailable}, ErrInvalidToken},
		{"unknown token", StoreValidator{Store: tokensAnswering{err: store.ErrNotFound}}, []error{ErrInvalidToken, store.ErrNotFound}, ErrValidatorUnavailable},
		{"revoked token", StoreValidator{Store: tokensAnswering{err: store.ErrRevoked}}, []error{ErrInvalidToken, store.ErrRevoked}, ErrValidatorUnavailable},
		{"store down", StoreValidator{Store: tokensAnswering{err: down}}, []error{ErrValidatorUnavailable, down}, ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.validator.Validate(t.Context(), "some-token")
			if p != nil || err == nil {
				t.Fatalf("Validate = %v, %v; want a refusal", p, err)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("Validate error %v does not wrap %v", err, w)
				}
			}
			if errors.Is(err, tt.notWant) {
				t.Errorf("Validate error %v wraps %v", err, tt.notWant)
			}
		})
	}
}

func TestErrorGapsMessage(t *testing.T) {
	tests := []struct {
		e    *Error
		want string
	}{
		{&Error{Status: http.StatusUnauthorized, Description: "an access token is required"}, "middleware: an access token is required"},
		{&Error{Status: http.StatusUnauthorized, Code: dpop.CodeInvalidToken, Description: "the token is expired"}, string(dpop.CodeInvalidToken) + ": the token is expired"},
		{&Error{Status: http.StatusForbidden, Code: dpop.CodeInsufficientScope, Description: "d"}, string(dpop.CodeInsufficientScope) + ": d"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// RequireScope on a route that is not behind New's middleware refuses with
// 401, even when something else put a principal holding the scopes in the
// context.
func TestRequireScopeGapsWithoutMiddleware(t *testing.T) {
	h := RequireScope("read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("request let through without the middleware")
	}))
	for name, ctx := range map[string]context.Context{
		"no principal":                context.Background(),
		"principal holding the scope": WithPrincipal(context.Background(), &Principal{Subject: "alice", Scopes: []string{"read"}}),
		"principal lacking the scope": WithPrincipal(context.Background(), &Principal{Subject: "alice"}),
	} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/things", nil).WithContext(ctx))
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", rec.Code)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != "DPoP" {
				t.Errorf("WWW-Authenticate %q, want DPoP", got)
			}
		})
	}
}
