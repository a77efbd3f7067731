package handlers

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/dpopkit/dpop"
)

// form is a request's parameters, each present at most once (RFC 6749 §3.1,
// §3.2: "Request and response parameters MUST NOT be included more than
// once"). An empty value counts as absent.
type form map[string]string

// required returns the parameter name, or the invalid_request refusal of a
// request without it (RFC 6749 §5.2).
func (f form) required(name string) (string, *Error) {
	v := f[name]
	if v == "" {
		return "", badRequest(dpop.CodeInvalidRequest, name+" is required", ErrMissingParam)
	}
	return v, nil
}

// readForm reads the body of a POST with Content-Type
// application/x-www-form-urlencoded, at most maxBytes, refusing repeated
// parameters and parameters in the query string.
func readForm(w http.ResponseWriter, r *http.Request, maxBytes int64) (form, *Error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, oauthError(http.StatusMethodNotAllowed, dpop.CodeInvalidRequest, "the endpoint accepts POST only", ErrMethod)
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, badRequest(dpop.CodeInvalidRequest, "the body must be application/x-www-form-urlencoded", ErrContentType)
	}
	if r.URL.RawQuery != "" {
		return nil, badRequest(dpop.CodeInvalidRequest, "parameters belong in the body, not the URL", ErrRepeatedParam)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, oauthError(http.StatusRequestEntityTooLarge, dpop.CodeInvalidRequest, "the body is too large", ErrBodyTooLarge)
		}
		return nil, badRequest(dpop.CodeInvalidRequest, "the body could not be read", err)
	}
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest(dpop.CodeInvalidRequest, "the body is not valid form encoding", ErrContentType)
	}
	return singleValues(values)
}

// singleValues refuses a parameter given twice and drops empty ones.
func singleValues(values url.Values) (form, *Error) {
	f := make(form, len(values))
	for k, vs := range values {
		if len(vs) > 1 {
			return nil, badRequest(dpop.CodeInvalidRequest, "a parameter is repeated", ErrRepeatedParam)
		}
		if vs[0] != "" {
			f[k] = vs[0]
		}
	}
	return f, nil
}
