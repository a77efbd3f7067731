package middleware

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/internal/testkit/dpoptest"
)

// principalValidatorGaps answers every token with a copy of one principal.
type principalValidatorGaps struct{ p Principal }

func (v principalValidatorGaps) Validate(context.Context, string) (*Principal, error) {
	p := v.p
	return &p, nil
}

const resourceGaps = "https://api.example"

// serveGaps runs one request through a middleware with validator v and
// returns the recorder, the refusal handed to the ErrorHandler (nil when
// let through) and the principal the handler saw.
func serveGaps(t *testing.T, v TokenValidator, req *http.Request) (*httptest.ResponseRecorder, *Error, *Principal) {
	t.Helper()
	var refusal *Error
	mw, err := New(Options{ResourceURL: resourceGaps, Validator: v,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, e *Error) { refusal = e; WriteError(w, r, e) }})
	if err != nil {
		t.Fatal(err)
	}
	var seen *Principal
	rec := httptest.NewRecorder()
	mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = PrincipalFrom(r.Context())
		w.WriteHeader(http.StatusNoContent)
	})).ServeHTTP(rec, req)
	return rec, refusal, seen
}

// dpopRequestGaps is GET target with Authorization: DPoP token and a proof
// by signer for it.
func dpopRequestGaps(t *testing.T, signer *dpop.Signer, target, token string) *http.Request {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.Header.Set("Authorization", "DPoP "+token)
	u := *req.URL
	u.RawQuery = ""
	req.Header.Set("DPoP", dpoptest.Proof(t, signer, http.MethodGet, u.String(), dpop.ProofOptions{AccessToken: token}))
	return req
}

// An accepted request without nonces configured gets no DPoP-Nonce header
// at all (not an empty one), and the handler sees the validator's principal.
func TestResourceAcceptedNoNonceHeaderGaps(t *testing.T) {
	signer := newSigner(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	v := principalValidatorGaps{Principal{Subject: "alice", ClientID: "app", Audience: []string{resourceGaps}, Scopes: []string{"read"}, JKT: signer.JKT(), ExpiresAt: exp}}
	rec, refusal, seen := serveGaps(t, v, dpopRequestGaps(t, signer, resourceGaps+"/api", "tok"))
	if rec.Code != http.StatusNoContent || refusal != nil {
		t.Fatalf("refused: %d %v", rec.Code, refusal)
	}
	if vs, present := rec.Header()["Dpop-Nonce"]; present {
		t.Errorf("DPoP-Nonce %q sent without nonces", vs)
	}
	if seen == nil || seen.Subject != "alice" || seen.ClientID != "app" || seen.JKT != signer.JKT() || !seen.ExpiresAt.Equal(exp) || !seen.HasScope("read") {
		t.Errorf("principal %+v", seen)
	}
}

// An unbound token sent with the DPoP scheme is refused as unbound, even
// with a proof that is otherwise correct (RFC 9449 §7.1).
func TestResourceUnboundTokenAsDPoPGaps(t *testing.T) {
	signer := newSigner(t)
	v := principalValidatorGaps{Principal{Subject: "alice", ClientID: "app", Audience: []string{resourceGaps}, ExpiresAt: time.Now().Add(time.Hour)}}
	rec, refusal, seen := serveGaps(t, v, dpopRequestGaps(t, signer, resourceGaps+"/api", "tok"))
	if rec.Code != http.StatusUnauthorized || refusal == nil || refusal.Code != dpop.CodeInvalidToken || !errors.Is(refusal.Err, ErrUnboundToken) || seen != nil {
		t.Fatalf("got %d %v, principal %v; want 401 invalid_token ErrUnboundToken", rec.Code, refusal, seen)
	}
	if www := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(www, "DPoP ") || !strings.Contains(www, `error="invalid_token"`) {
		t.Errorf("challenge %q", www)
	}
}

// The credentials rules (RFC 6750 §2): the cause and description tell
// "two methods" from "token in the query", and an empty token after the
// scheme is malformed.
func TestResourceCredentialsGaps(t *testing.T) {
	signer := newSigner(t)
	v := principalValidatorGaps{Principal{Subject: "alice", ClientID: "app", Audience: []string{resourceGaps}, JKT: signer.JKT(), ExpiresAt: time.Now().Add(time.Hour)}}
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		cause  error // nil: accepted
		desc   string
	}{
		{"query names access_token only as a value", func() *http.Request {
			return dpopRequestGaps(t, signer, resourceGaps+"/api?q=access_token", "tok")
		}, http.StatusNoContent, nil, ""},
		{"query parameter like access_token", func() *http.Request {
			return dpopRequestGaps(t, signer, resourceGaps+"/api?access_tokens=1&x_access_token=2", "tok")
		}, http.StatusNoContent, nil, ""},
		{"header and query token", func() *http.Request {
			return dpopRequestGaps(t, signer, resourceGaps+"/api?access_token=tok", "tok")
		}, http.StatusBadRequest, ErrMultipleMethods, "use exactly one authentication method"},
		{"header and a percent-encoded query token", func() *http.Request {
			return dpopRequestGaps(t, signer, resourceGaps+"/api?access%5Ftoken=tok", "tok")
		}, http.StatusBadRequest, ErrMultipleMethods, "use exactly one authentication method"},
		{"percent-encoded query token only", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, resourceGaps+"/api?%61ccess_token=tok", nil)
		}, http.StatusBadRequest, ErrMalformedHeader, "send the access token in the Authorization header"},
		{"query token only", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, resourceGaps+"/api?access_token=tok", nil)
		}, http.StatusBadRequest, ErrMalformedHeader, "send the access token in the Authorization header"},
		{"two Authorization headers", func() *http.Request {
			r := dpopRequestGaps(t, signer, resourceGaps+"/api", "tok")
			r.Header.Add("Authorization", "DPoP tok")
			return r
		}, http.StatusBadRequest, ErrMultipleMethods, "use exactly one authentication method"},
		{"scheme and a space, no token", func() *http.Request {
			r := dpopRequestGaps(t, signer, resourceGaps+"/api", "tok")
			r.Header.Set("Authorization", "DPoP ")
			return r
		}, http.StatusBadRequest, ErrMalformedHeader, "malformed Authorization header"},
		{"scheme and spaces, no token", func() *http.Request {
			r := dpopRequestGaps(t, signer, resourceGaps+"/api", "tok")
			r.Header.Set("Authorization", "DPoP    ")
			return r
		}, http.StatusBadRequest, ErrMalformedHeader, "malformed Authorization header"},
		{"scheme only", func() *http.Request {
			r := dpopRequestGaps(t, signer, resourceGaps+"/api", "tok")
			r.Header.Set("Authorization", "DPoP")
			return r
		}, http.StatusBadRequest, ErrMalformedHeader, "malformed Authorization header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, refusal, seen := serveGaps(t, v, tt.req())
			if tt.cause == nil {
				if rec.Code != tt.status || refusal != nil || seen == nil || seen.Subject != "alice" {
					t.Fatalf("got %d %v, principal %v; want accepted", rec.Code, refusal, seen)
				}
				return
			}
			if rec.Code != tt.status || refusal == nil || refusal.Code != dpop.CodeInvalidRequest || !errors.Is(refusal.Err, tt.cause) ||
				refusal.Description != tt.desc || seen != nil {
				t.Fatalf("got %d %+v; want %d %v %q", rec.Code, refusal, tt.status, tt.cause, tt.desc)
			}
			if www := rec.Header().Get("WWW-Authenticate"); !strings.Contains(www, `error="invalid_request"`) {
				t.Errorf("challenge %q", www)
			}
		})
	}
}
