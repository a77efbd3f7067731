package handlers

import (
	"github.com/dpopkit/dpop"

	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/dpopkit/dpop/store"
)

// Client authentication methods (RFC 8414 §2, RFC 7591 §2).
const (
	AuthSecretBasic = "client_secret_basic"
	AuthSecretPost  = "client_secret_post"
	AuthNone        = "none"
)

// authenticateClient identifies and authenticates the client of a request
// to the token, revocation or introspection endpoint (RFC 6749 §2.3.1):
// HTTP Basic, client_id and client_secret in the body, client_id alone for
// a public client, or a private_key_jwt assertion (client_assertion_type
// and client_assertion, RFC 7523 §2.2; see authenticateAssertion). Using
// two methods at once is refused (RFC 6749 §2.3). Secrets are compared by
// hash in constant time. A client registered with keys must use
// private_key_jwt, and only such a client may.
func (s *Server) authenticateClient(r *http.Request, f form) (*store.Client, *Error) {
	c, pending, e := s.authenticateClientLater(r, f)
	if e != nil {
		return nil, e
	}
	if e := s.spendAssertion(r.Context(), pending); e != nil {
		return nil, e
	}
	return c, nil
}

// authenticateClientLater is authenticateClient that leaves a client
// assertion's jti unspent: the token and PAR endpoints spend it
// (spendAssertion) just before the DPoP proof, once every check that spends
// nothing has passed.
func (s *Server) authenticateClientLater(r *http.Request, f form) (*store.Client, *pendingAssertion, *Error) {
	if f.get("client_assertion_type") != "" || f.get("client_assertion") != "" {
		return s.authenticateAssertion(r, f)
	}
	c, e := s.authenticateSecret(r, f)
	return c, nil, e
}

// authenticateSecret authenticates a client by its secret (Basic or
// client_secret_post), or a public client by its id alone.
func (s *Server) authenticateSecret(r *http.Request, f form) (*store.Client, *Error) {
	if s.fapi2() {
		// FAPI 2.0 §5.3.1.2: confidential clients with private_key_jwt
		// only; no secret, no public client.
		_, _, basic := r.BasicAuth()
		return nil, s.clientAuthFailed(basic, errProfileAuth)
	}
	id, secret, method := f.get("client_id"), f.get("client_secret"), AuthNone
	if secret != "" {
		method = AuthSecretPost
	}
	if user, pass, ok := r.BasicAuth(); ok {
		if secret != "" {
			return nil, badRequest(dpop.CodeInvalidRequest, "use one client authentication method", ErrAuthMethods)
		}
		// RFC 6749 §2.3.1: both parts are form-urlencoded before Basic.
		bid, err1 := url.QueryUnescape(user)
		bsecret, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil || (id != "" && id != bid) {
			return nil, s.clientAuthFailed(true, ErrClientAuth)
		}
		id, secret, method = bid, bsecret, AuthSecretBasic
	} else if r.Header.Get("Authorization") != "" {
		return nil, s.clientAuthFailed(false, ErrClientAuth)
	}
	if id == "" {
		return nil, s.clientAuthFailed(method == AuthSecretBasic, ErrClientAuth)
	}
	c, err := s.cfg.Store.GetClient(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Spend the time a secret check takes, so that the answer's timing
		// does not tell which client ids exist.
		(&store.Client{SecretHash: make([]byte, 32)}).SecretMatches(secret)
		return nil, s.clientAuthFailed(method == AuthSecretBasic, ErrClientAuth)
	case err != nil:
		return nil, s.storeError(r, err)
	}
	if c.KeyAuthenticated() {
		// Spend the time of a secret check here too.
		(&store.Client{SecretHash: make([]byte, 32)}).SecretMatches(secret)
		return nil, s.clientAuthFailed(method == AuthSecretBasic, fmt.Errorf("%w: %w", ErrClientAssertion, errAssertionRequired))
	}
	if c.Public() {
		if method != AuthNone {
			return nil, s.clientAuthFailed(method == AuthSecretBasic, ErrClientAuth)
		}
		return c, nil
	}
	if method == AuthNone || !c.SecretMatches(secret) {
		return nil, s.clientAuthFailed(method == AuthSecretBasic, ErrClientAuth)
	}
	return c, nil
}

// clientAuthFailed is invalid_client: 401, with a Basic challenge when the
// client tried Basic (RFC 6749 §5.2).
func (s *Server) clientAuthFailed(basic bool, cause error) *Error {
	e := oauthError(http.StatusUnauthorized, dpop.CodeInvalidClient, "client authentication failed", cause)
	e.Basic = basic
	return e
}

// storeError logs a store failure and answers 503: the request is refused,
// never accepted unchecked (fail closed).
func (s *Server) storeError(r *http.Request, err error) *Error { return s.storeErr(r.Context(), err) }
