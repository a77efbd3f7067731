package dpop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// maxPARResponse bounds the pushed authorization response PushAuthorization
// reads.
const maxPARResponse = 16 << 10

// PushedAuthorization is the answer to a pushed authorization request
// (RFC 9126 §2.2).
type PushedAuthorization struct {
	// RequestURI references the pushed parameters at the authorization
	// endpoint, sent there with the client_id.
	RequestURI string `json:"request_uri"`
	// ExpiresIn is its lifetime in seconds.
	ExpiresIn int64 `json:"expires_in"`
}

// PARError is an error answer of the PAR endpoint (RFC 9126 §2.3, RFC 6749
// §5.2).
type PARError struct {
	StatusCode  int
	Code        ErrorCode
	Description string
}

// Error implements error.
func (e *PARError) Error() string {
	return fmt.Sprintf("dpop: pushed authorization request refused: %d %s: %s", e.StatusCode, e.Code, e.Description)
}

// PushAuthorization sends a pushed authorization request (RFC 9126 §2.1):
// params, form-encoded, POSTed to parURL with client. Give it a client whose
// transport authenticates the request (AssertionTransport for
// private_key_jwt, or Basic set by the caller through a RoundTripper) and
// adds a DPoP proof (NewTransport), which binds the code to the proof's key
// (RFC 9449 §10.1); a use_dpop_nonce answer is retried by NewTransport.
// It returns the request_uri and its lifetime (201 Created, RFC 9126 §2.2),
// a *PARError for an OAuth error answer, or another error. Then send the
// user to the authorization endpoint with AuthorizationURL.
func PushAuthorization(ctx context.Context, client *http.Client, parURL string, params url.Values) (*PushedAuthorization, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if params.Has("request_uri") {
		return nil, errors.New("dpop: a pushed authorization request cannot carry request_uri (RFC 9126 §2.1)")
	}
	body := params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, parURL, strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("dpop: pushed authorization request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dpop: pushed authorization request: %w", err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxPARResponse+1))
	if err != nil {
		return nil, fmt.Errorf("dpop: pushed authorization response: %w", err)
	}
	if len(data) > maxPARResponse {
		return nil, errors.New("dpop: pushed authorization response too large")
	}
	if mt, _, err := mime.ParseMediaType(res.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, fmt.Errorf("dpop: pushed authorization response: %d, not application/json", res.StatusCode)
	}
	if res.StatusCode != http.StatusCreated {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if err := json.Unmarshal(data, &e); err != nil || e.Error == "" {
			return nil, fmt.Errorf("dpop: pushed authorization response: %d without an OAuth error", res.StatusCode)
		}
		return nil, &PARError{StatusCode: res.StatusCode, Code: ErrorCode(e.Error), Description: e.Description}
	}
	var p PushedAuthorization
	if err := json.Unmarshal(data, &p); err != nil || p.RequestURI == "" || p.ExpiresIn <= 0 {
		return nil, errors.New("dpop: pushed authorization response without request_uri and a positive expires_in")
	}
	return &p, nil
}

// AuthorizationURL is the URL to send the user to after a pushed
// authorization request (RFC 9126 §4): the authorization endpoint with
// client_id and request_uri only; whatever query the endpoint URL has is
// kept.
func AuthorizationURL(authorizationEndpoint, clientID, requestURI string) (string, error) {
	u, err := url.Parse(authorizationEndpoint)
	if err != nil || !u.IsAbs() {
		return "", errors.New("dpop: the authorization endpoint is not an absolute URL")
	}
	q := u.Query()
	q.Set("client_id", clientID)
	q.Set("request_uri", requestURI)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
