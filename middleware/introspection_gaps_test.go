package middleware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Each invalid IntrospectionOptions is refused with its own error, also when
// a cache size is given (so that nothing later fails in its place).
func TestNewIntrospectionValidatorOptionErrorsGaps(t *testing.T) {
	const (
		endpoint = "middleware: IntrospectionOptions.Endpoint must be an https URL (http only on a loopback address)"
		creds    = "middleware: IntrospectionOptions.ClientID and ClientSecret are required"
		negative = "middleware: IntrospectionOptions.CacheSize and CacheTTL must not be negative"
	)
	ok := IntrospectionOptions{Endpoint: "https://as.example/introspect", ClientID: "rs", ClientSecret: "s", CacheSize: 8}
	tests := []struct {
		name string
		f    func(o *IntrospectionOptions)
		want string
	}{
		{"http elsewhere", func(o *IntrospectionOptions) { o.Endpoint = "http://as.example/introspect" }, endpoint},
		{"no endpoint", func(o *IntrospectionOptions) { o.Endpoint = "" }, endpoint},
		{"no endpoint, default cache size", func(o *IntrospectionOptions) { o.Endpoint, o.CacheSize = "", 0 }, endpoint},
		{"http on a private IP", func(o *IntrospectionOptions) { o.Endpoint = "http://10.1.2.3/introspect" }, endpoint},
		{"no client id", func(o *IntrospectionOptions) { o.ClientID = "" }, creds},
		{"no secret", func(o *IntrospectionOptions) { o.ClientSecret = "" }, creds},
		{"no secret, default cache size", func(o *IntrospectionOptions) { o.ClientSecret, o.CacheSize = "", 0 }, creds},
		{"negative TTL", func(o *IntrospectionOptions) { o.CacheTTL = -time.Second }, negative},
		{"negative cache size", func(o *IntrospectionOptions) { o.CacheSize = -1 }, negative},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.f(&o)
			v, err := NewIntrospectionValidator(o)
			if err == nil || err.Error() != tt.want || v != nil {
				t.Errorf("NewIntrospectionValidator = %v, %v; want the error %q", v, err, tt.want)
			}
		})
	}
}

// A nil *IntrospectionValidator answers ErrValidatorUnavailable, never a
// principal and never a panic.
func TestIntrospectionValidatorNilGaps(t *testing.T) {
	var v *IntrospectionValidator
	p, err := v.Validate(context.Background(), "token")
	if p != nil || !errors.Is(err, ErrValidatorUnavailable) || errors.Is(err, ErrInvalidToken) || !strings.HasSuffix(err.Error(), "introspection: no validator") {
		t.Fatalf("Validate = %v, %v; want ErrValidatorUnavailable", p, err)
	}
}

// errTransportGaps is a transport failure.
var errTransportGaps = errors.New("dial tcp: connection refused (test)")

type failingTransportGaps struct{}

func (failingTransportGaps) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errTransportGaps
}

// A request that fails is ErrValidatorUnavailable and keeps the transport
// error as a cause, for logs and errors.Is.
func TestIntrospectionRequestFailedGaps(t *testing.T) {
	v, err := NewIntrospectionValidator(IntrospectionOptions{
		Endpoint: "https://as.example/introspect", ClientID: "rs", ClientSecret: "s",
		HTTPClient: &http.Client{Transport: failingTransportGaps{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Validate(t.Context(), "token")
	if p != nil || !errors.Is(err, ErrValidatorUnavailable) || !errors.Is(err, errTransportGaps) || errors.Is(err, ErrInvalidToken) ||
		!strings.Contains(err.Error(), "introspection: request failed: ") {
		t.Fatalf("Validate = %v, %v; want ErrValidatorUnavailable wrapping the transport error", p, err)
	}
}

// An answer cut short (the connection closes before Content-Length bytes)
// is ErrValidatorUnavailable with the read error, never the part read: here
// that part is a complete, valid active answer.
func TestIntrospectionAnswerCutShortGaps(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	answer := fmt.Sprintf(`{"active":true,"exp":%d,"token_type":"DPoP","cnf":{"jkt":%q},"sub":"alice","client_id":"app","scope":"read"}`,
		now.Add(time.Hour).Unix(), testJKT)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)+100))
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, answer)
		// Returning with bytes owed closes the connection.
	}))
	t.Cleanup(srv.Close)
	v, err := NewIntrospectionValidator(IntrospectionOptions{
		Endpoint: srv.URL + "/introspect", ClientID: "rs", ClientSecret: "s",
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Validate(t.Context(), "token")
	if p != nil || !errors.Is(err, ErrValidatorUnavailable) || !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrInvalidToken) ||
		!strings.Contains(err.Error(), "introspection: reading the answer: ") {
		t.Fatalf("Validate = %v, %v; want ErrValidatorUnavailable wrapping io.ErrUnexpectedEOF", p, err)
	}

	// Behind the middleware: 503 server_error, the cause kept.
	var got *Error
	mw, err := New(Options{ResourceURL: "https://api.example", Validator: v,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, e *Error) { got = e; WriteError(w, r, e) }})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "https://api.example/api", nil)
	req.Header.Set("Authorization", "DPoP token")
	rec := httptest.NewRecorder()
	mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("request let through") })).ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="server_error"`) ||
		got == nil || !errors.Is(got.Err, ErrValidatorUnavailable) || !errors.Is(got.Err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %d %q, %v", rec.Code, rec.Header().Get("WWW-Authenticate"), got)
	}
}
