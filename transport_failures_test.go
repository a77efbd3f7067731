package dpop

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func (b *fakeBase) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.reqs)
}

// nonceChallenge400 is an authorization server's use_dpop_nonce error
// (RFC 9449 §8) with body as its body.
func nonceChallenge400(nonce string, body io.ReadCloser) *http.Response {
	return &http.Response{
		StatusCode: http.StatusBadRequest,
		Header:     http.Header{"Dpop-Nonce": {nonce}, "Content-Type": {"application/json"}},
		Body:       body,
	}
}

// nonceChallenge401 is a resource server's use_dpop_nonce challenge
// (RFC 9449 §9) with body as its body.
func nonceChallenge401(nonce string, body io.ReadCloser) *http.Response {
	return &http.Response{
		StatusCode: http.StatusUnauthorized,
		Header: http.Header{
			"Dpop-Nonce":       {nonce},
			"Www-Authenticate": {`DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`},
		},
		Body: body,
	}
}

func useNonceBody() *trackedBody {
	return &trackedBody{Reader: strings.NewReader(`{"error":"use_dpop_nonce"}`)}
}

func okResponse() *http.Response {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody}
}

// TestTransportRefusesUnsignableRequest checks that a request no proof can be
// made for is refused before anything is sent, and that its body is closed:
// one without a URL, and one whose URL is opaque (its target is not the htu
// a proof would carry).
func TestTransportRefusesUnsignableRequest(t *testing.T) {
	tests := []struct {
		name string
		edit func(*http.Request)
		want string
	}{
		{"no URL", func(r *http.Request) { r.URL = nil }, "dpop: request has no URL"},
		{"opaque URL", func(r *http.Request) { r.URL.Opaque = "//as.example/token" }, "dpop: proof URL must be absolute"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := &fakeBase{step: func(int) (*http.Response, error) { return okResponse(), nil }}
			body := &trackedBody{Reader: strings.NewReader("x")}
			req, err := http.NewRequest("POST", "https://as.example/token", body)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(req)
			resp, err := NewTransport(newTransportSigner(t), base).RoundTrip(req)
			if err == nil || resp != nil {
				t.Fatalf("RoundTrip = %v, %v; want an error", resp, err)
			}
			if err.Error() != tc.want {
				t.Errorf("RoundTrip error = %q, want %q", err, tc.want)
			}
			if !body.closed.Load() {
				t.Error("request body not closed")
			}
			if n := base.count(); n != 0 {
				t.Errorf("base saw %d requests, want none", n)
			}
		})
	}
}

// TestTransportBaseFailures checks that a base RoundTripper's failure, or a
// response it does not give, reaches the caller as an error and no response,
// on the first request and on the retry with a nonce; the first response of
// a retried exchange is closed.
func TestTransportBaseFailures(t *testing.T) {
	errBase := errors.New("base failed")
	tests := []struct {
		name     string
		second   func() (*http.Response, error) // nil: the first request fails
		first    func() (*http.Response, error)
		wantErr  error // nil: any error
		wantReqs int
	}{
		{
			name:     "error",
			first:    func() (*http.Response, error) { return nil, errBase },
			wantErr:  errBase,
			wantReqs: 1,
		},
		{
			name:     "no response",
			first:    func() (*http.Response, error) { return nil, nil },
			wantReqs: 1,
		},
		{
			name:     "error on retry",
			second:   func() (*http.Response, error) { return nil, errBase },
			wantErr:  errBase,
			wantReqs: 2,
		},
		{
			name:     "no response on retry",
			second:   func() (*http.Response, error) { return nil, nil },
			wantReqs: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			firstBody := useNonceBody()
			base := &fakeBase{step: func(n int) (*http.Response, error) {
				if n == 1 && tc.first != nil {
					return tc.first()
				}
				if n == 1 {
					return nonceChallenge400("n-1", firstBody), nil
				}
				return tc.second()
			}}
			req, err := http.NewRequest("POST", "https://as.example/token", strings.NewReader("grant_type=x"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := NewTransport(newTransportSigner(t), base).RoundTrip(req)
			if err == nil || resp != nil {
				t.Fatalf("RoundTrip = %v, %v; want an error and no response", resp, err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("RoundTrip error = %v, want %v", err, tc.wantErr)
			}
			if n := base.count(); n != tc.wantReqs {
				t.Errorf("base saw %d requests, want %d", n, tc.wantReqs)
			}
			if tc.second != nil {
				if !firstBody.closed.Load() {
					t.Error("first response body not closed before the retry")
				}
				if got := decodeProof(t, base.reqs[1].Header.Get("DPoP")).claim("nonce"); got != "n-1" {
					t.Errorf("retry nonce = %q, want n-1", got)
				}
			}
		})
	}
}

// TestTransport400WithoutBody checks that a 400 with a nonce but no body to
// look for use_dpop_nonce in is returned as it is, without a retry.
func TestTransport400WithoutBody(t *testing.T) {
	for _, body := range []io.ReadCloser{nil, http.NoBody} {
		base := &fakeBase{step: func(int) (*http.Response, error) { return nonceChallenge400("n-1", body), nil }}
		req, err := http.NewRequest("POST", "https://as.example/token", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := NewTransport(newTransportSigner(t), base).RoundTrip(req)
		if err != nil {
			t.Fatalf("body %v: %v", body, err)
		}
		if resp.StatusCode != http.StatusBadRequest || resp.Body != body {
			t.Errorf("body %v: got status %d, body %v; want the 400 as it is", body, resp.StatusCode, resp.Body)
		}
		if n := base.count(); n != 1 {
			t.Errorf("body %v: base saw %d requests, want 1", body, n)
		}
	}
}

// TestTransportRetries401 checks the retry after a resource server's
// use_dpop_nonce challenge: the first response's body, if any, is closed, and
// the retry carries the nonce.
func TestTransportRetries401(t *testing.T) {
	for _, tc := range []struct {
		name string
		body *trackedBody // nil: a response without body
	}{
		{"with body", &trackedBody{Reader: strings.NewReader("unauthorized")}},
		{"without body", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var first io.ReadCloser
			if tc.body != nil {
				first = tc.body
			}
			base := &fakeBase{step: func(n int) (*http.Response, error) {
				if n == 1 {
					return nonceChallenge401("n-1", first), nil
				}
				return okResponse(), nil
			}}
			req, err := http.NewRequest("GET", "https://rs.example/api", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "DPoP tok")
			resp, err := NewTransport(newTransportSigner(t), base).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d, want the retry's 200", resp.StatusCode)
			}
			if n := base.count(); n != 2 {
				t.Fatalf("base saw %d requests, want 2", n)
			}
			if got := decodeProof(t, base.reqs[1].Header.Get("DPoP")).claim("nonce"); got != "n-1" {
				t.Errorf("retry nonce = %q, want n-1", got)
			}
			if tc.body != nil && !tc.body.closed.Load() {
				t.Error("first response body not closed")
			}
		})
	}
}

// TestTransportRetryWithoutBodyIgnoresGetBody checks that a request without
// a body is retried without one: GetBody, set though Body is nil, is not
// called, so the retry does not gain a body the first request did not have.
func TestTransportRetryWithoutBodyIgnoresGetBody(t *testing.T) {
	base := &fakeBase{step: func(n int) (*http.Response, error) {
		if n == 1 {
			return nonceChallenge400("n-1", useNonceBody()), nil
		}
		return okResponse(), nil
	}}
	req, err := http.NewRequest("POST", "https://as.example/token", nil)
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	req.GetBody = func() (io.ReadCloser, error) {
		calls++
		return io.NopCloser(strings.NewReader("not the request's body")), nil
	}
	resp, err := NewTransport(newTransportSigner(t), base).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || base.count() != 2 {
		t.Fatalf("status %d after %d requests, want 200 after a retry", resp.StatusCode, base.count())
	}
	if calls != 0 || base.bodies[0] != "" || base.bodies[1] != "" {
		t.Errorf("GetBody called %d times; bodies sent %q; want no call and no bodies", calls, base.bodies)
	}
}
