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
// once") except resource, which RFC 8707 §2 lets a request repeat. An empty
// value counts as absent.
type form struct {
	one map[string]string
	// resources are the resource parameters, in order, empty ones
	// included (parseResources refuses them).
	resources []string
}

// paramResource is the resource indicator parameter (RFC 8707 §2).
const paramResource = "resource"

// get returns the parameter name, "" when absent.
func (f form) get(name string) string { return f.one[name] }

// values returns the parameters as url.Values.
func (f form) values() url.Values {
	v := make(url.Values, len(f.one)+1)
	for k, x := range f.one {
		v[k] = []string{x}
	}
	if len(f.resources) > 0 {
		v[paramResource] = f.resources
	}
	return v
}

// required returns the parameter name, or the invalid_request refusal of a
// request without it (RFC 6749 §5.2).
func (f form) required(name string) (string, *Error) {
	v := f.get(name)
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
		return form{}, oauthError(http.StatusMethodNotAllowed, dpop.CodeInvalidRequest, "the endpoint accepts POST only", ErrMethod)
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return form{}, badRequest(dpop.CodeInvalidRequest, "the body must be application/x-www-form-urlencoded", ErrContentType)
	}
	if r.URL.RawQuery != "" {
		return form{}, badRequest(dpop.CodeInvalidRequest, "parameters belong in the body, not the URL", ErrRepeatedParam)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return form{}, oauthError(http.StatusRequestEntityTooLarge, dpop.CodeInvalidRequest, "the body is too large", ErrBodyTooLarge)
		}
		return form{}, badRequest(dpop.CodeInvalidRequest, "the body could not be read", err)
	}
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return form{}, badRequest(dpop.CodeInvalidRequest, "the body is not valid form encoding", ErrContentType)
	}
	return singleValues(values)
}

// singleValues refuses a parameter given twice, resource excepted, and
// drops empty ones.
func singleValues(values url.Values) (form, *Error) {
	f := form{one: make(map[string]string, len(values))}
	for k, vs := range values {
		if k == paramResource {
			f.resources = vs
			continue
		}
		if len(vs) > 1 {
			return form{}, badRequest(dpop.CodeInvalidRequest, "a parameter is repeated", ErrRepeatedParam)
		}
		if vs[0] != "" {
			f.one[k] = vs[0]
		}
	}
	return f, nil
}
