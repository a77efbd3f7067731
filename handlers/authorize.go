package handlers

import (
	"github.com/dpopkit/dpop"

	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/dpopkit/dpop/store"
)

// Fixed texts of the error pages of the authorization endpoint. A page never
// shows anything taken from the request (RFC 6749 §4.1.2.1, §10.15).
const (
	authzPageMalformed    = "The authorization request is malformed. Nothing was sent back to the application that sent you here."
	authzPageTooLarge     = "The authorization request is too large. Nothing was sent back to the application that sent you here."
	authzPageMethod       = "The authorization endpoint accepts GET and POST requests only."
	authzPageClient       = "The application that sent you here is not registered with this server. Nothing was sent back to it."
	authzPageRedirect     = "The application that sent you here gave a redirection address that is not registered with this server. Nothing was sent back to it."
	authzPageUnavailable  = "The server cannot handle the authorization request now. Please try again later."
	authzPageUnconfigured = "This server does not offer the authorization code flow."
)

// AuthorizeHandler returns the authorization endpoint (RFC 6749 §3.1) for
// the authorization code grant (RFC 6749 §4.1), with PKCE (RFC 7636) and
// DPoP authorization code binding (RFC 9449 §10).
//
// It accepts GET with the parameters in the query, and POST with them in an
// application/x-www-form-urlencoded body of at most Config.MaxBodyBytes and
// nothing in the query; any other method gets 405. A parameter sent twice
// makes the request invalid (RFC 6749 §3.1); an empty one counts as absent;
// unknown ones are ignored.
//
// Errors that leave the server without a trustworthy place to send the user
// back to are never redirected (RFC 6749 §4.1.2.1, §10.15): a malformed
// request or a repeated parameter, a missing or unknown client_id, and a
// redirect_uri that is not exactly (byte for byte) one of the client's
// registered URIs, or missing when the client registered more than one. Those
// get a small HTML page with a fixed text that shows nothing from the request:
// 400, 413 for an oversized body, 503 when the store fails, and 500 when
// Config.Authenticate is nil, since the server then cannot authenticate users
// and offers no authorization code flow at all.
//
// Every later error is sent back to the redirect URI as an RFC 6749 §4.1.2.1
// error response, with state and the iss parameter of RFC 9207:
// unsupported_response_type when response_type is not "code" (invalid_request
// when it is missing); unauthorized_client when the client may not use the
// authorization_code grant; invalid_scope when Config.ScopePolicy refuses the
// scope; invalid_request for PKCE parameters that are missing where required
// (public clients always, every client with Config.RequirePKCE), a method
// other than S256 (RFC 9700 §2.1.1: "plain" is refused, and so is a
// code_challenge without a method, which RFC 7636 §4.3 defines as "plain"), a
// challenge that is not 43 base64url characters of a SHA-256 hash, or a
// dpop_jkt that is not a base64url SHA-256 JWK thumbprint (RFC 9449 §10).
//
// A valid request goes to Config.Authenticate with the granted scopes. When
// the Authenticator handled the request (a login page, say), nothing more is
// done; an error becomes server_error, an empty subject access_denied.
// Otherwise a fresh code is stored by its hash, bound to the client, the
// redirect_uri as sent (empty when it was omitted, RFC 6749 §4.1.3), the
// scope, the subject, the PKCE challenge and dpop_jkt, for Config.CodeTTL, and
// the user is sent back with code, state and iss. Redirects are 302 for GET
// and 303 for POST; the registered URI's own query parameters are kept.
//
// For POST the body has been read when the Authenticator runs; r.Form and
// r.PostForm then hold the parameters. Changes the Authenticator makes to the
// AuthorizationRequest have no effect on the code.
func (s *Server) AuthorizeHandler() http.Handler {
	return http.HandlerFunc(s.authorize)
}

// authzTarget is where an authorization response goes: the redirect URI in
// use, parsed, with its own query, and the state to echo.
type authzTarget struct {
	uri   *url.URL
	query url.Values
	state string
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	log := s.cfg.Logger
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		log.InfoContext(ctx, "authorization request refused", "reason", ErrMethod, "method", r.Method)
		writeAuthorizePage(w, http.StatusMethodNotAllowed, authzPageMethod)
		return
	}
	if s.cfg.Authenticate == nil {
		log.ErrorContext(ctx, "authorization request refused: Config.Authenticate is nil")
		writeAuthorizePage(w, http.StatusInternalServerError, authzPageUnconfigured)
		return
	}
	f, e := s.authorizeParams(w, r)
	if e != nil {
		log.InfoContext(ctx, "authorization request refused", "reason", e.Err)
		text := authzPageMalformed
		if e.Status == http.StatusRequestEntityTooLarge {
			text = authzPageTooLarge
		}
		writeAuthorizePage(w, e.Status, text)
		return
	}

	// Client and redirect URI: until both are known good, nothing is
	// redirected.
	clientID := f["client_id"]
	if clientID == "" {
		log.InfoContext(ctx, "authorization request refused", "reason", ErrMissingParam, "param", "client_id")
		writeAuthorizePage(w, http.StatusBadRequest, authzPageClient)
		return
	}
	client, err := s.cfg.Store.GetClient(ctx, clientID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		log.InfoContext(ctx, "authorization request refused: unknown client", "client_id", logValue(clientID))
		writeAuthorizePage(w, http.StatusBadRequest, authzPageClient)
		return
	case err != nil:
		log.ErrorContext(ctx, "store failure", "path", r.URL.Path, "err", err)
		writeAuthorizePage(w, http.StatusServiceUnavailable, authzPageUnavailable)
		return
	}
	sentURI := f["redirect_uri"]
	uri, ok := authorizeRedirectURI(client, sentURI)
	if !ok {
		log.InfoContext(ctx, "authorization request refused: redirect_uri not registered", "client_id", logValue(clientID), "redirect_uri", logValue(sentURI))
		writeAuthorizePage(w, http.StatusBadRequest, authzPageRedirect)
		return
	}
	target, err := parseAuthorizeTarget(uri, f["state"])
	if err != nil {
		log.WarnContext(ctx, "authorization request refused: registered redirect URI unusable", "client_id", clientID, "err", err)
		writeAuthorizePage(w, http.StatusBadRequest, authzPageRedirect)
		return
	}

	// From here on, errors go back to the client (RFC 6749 §4.1.2.1).
	refuse := func(code dpop.ErrorCode, description string, cause error) {
		log.InfoContext(ctx, "authorization request refused", "client_id", clientID, "error", code, "reason", cause)
		s.authorizeRedirect(w, r, target, url.Values{"error": {string(code)}, "error_description": {description}})
	}
	switch rt := f["response_type"]; {
	case rt == "":
		refuse(dpop.CodeInvalidRequest, "response_type is missing", ErrMissingParam)
		return
	case rt != "code":
		refuse(dpop.CodeUnsupportedResponseType, "only response_type code is supported", errors.New("handlers: unsupported response_type"))
		return
	}
	if !slices.Contains(client.GrantTypes, "authorization_code") {
		refuse(dpop.CodeUnauthorizedClient, "the client may not use the authorization code grant", ErrGrantType)
		return
	}
	var requested []string
	if fields := strings.Fields(f["scope"]); len(fields) > 0 {
		requested = fields
	}
	granted, err := s.cfg.ScopePolicy(ctx, client, requested)
	switch {
	case errors.Is(err, ErrScope):
		refuse(dpop.CodeInvalidScope, "the requested scope is not allowed", err)
		return
	case err != nil:
		log.ErrorContext(ctx, "scope policy failed", "client_id", clientID, "err", err)
		s.authorizeRedirect(w, r, target, url.Values{"error": {string(dpop.CodeServerError)}, "error_description": {"the scope policy failed"}})
		return
	}
	challenge, method, jkt := f["code_challenge"], f["code_challenge_method"], f["dpop_jkt"]
	switch {
	case method != "" && method != PKCEMethodS256:
		refuse(dpop.CodeInvalidRequest, "code_challenge_method must be S256", ErrPKCE)
		return
	case challenge == "" && method != "":
		refuse(dpop.CodeInvalidRequest, "code_challenge is missing", ErrPKCE)
		return
	case challenge == "" && (client.Public() || s.cfg.RequirePKCE):
		refuse(dpop.CodeInvalidRequest, "PKCE is required: code_challenge is missing", ErrPKCE)
		return
	case challenge != "" && method == "":
		// RFC 7636 §4.3: no method means "plain", which is refused.
		refuse(dpop.CodeInvalidRequest, "code_challenge_method must be S256", ErrPKCE)
		return
	case challenge != "" && !isBase64URLHash(challenge):
		refuse(dpop.CodeInvalidRequest, "code_challenge is not a base64url SHA-256 hash", ErrPKCE)
		return
	}
	if jkt != "" && !isBase64URLHash(jkt) {
		refuse(dpop.CodeInvalidRequest, "dpop_jkt is not a base64url SHA-256 JWK thumbprint", errors.New("handlers: malformed dpop_jkt"))
		return
	}

	// The end user, authenticated by the host.
	subject, handled, err := s.cfg.Authenticate(w, r, &AuthorizationRequest{
		Client:              client,
		RedirectURI:         uri,
		Scopes:              slices.Clone(granted),
		State:               target.state,
		CodeChallenge:       challenge,
		CodeChallengeMethod: method,
		DPoPJKT:             jkt,
	})
	switch {
	case handled:
		return
	case err != nil:
		log.ErrorContext(ctx, "authenticator failed", "client_id", clientID, "err", err)
		s.authorizeRedirect(w, r, target, url.Values{"error": {string(dpop.CodeServerError)}, "error_description": {"the server could not authenticate the user"}})
		return
	case subject == "":
		refuse(dpop.CodeAccessDenied, "the user did not authorize the request", errors.New("handlers: no authenticated user"))
		return
	}

	code := randomToken()
	rec := &store.AuthorizationCode{
		GrantID:             randomToken(),
		ClientID:            clientID,
		RedirectURI:         sentURI,
		Scope:               strings.Join(granted, " "),
		Subject:             subject,
		CodeChallenge:       challenge,
		CodeChallengeMethod: method,
		DPoPJKT:             jkt,
		ExpiresAt:           s.cfg.Now().Add(s.cfg.CodeTTL),
	}
	if err := s.cfg.Store.SaveCode(ctx, store.HashToken(code), rec); err != nil {
		log.ErrorContext(ctx, "store failure", "path", r.URL.Path, "err", err)
		s.authorizeRedirect(w, r, target, url.Values{"error": {string(dpop.CodeServerError)}, "error_description": {"the server cannot handle the request now"}})
		return
	}
	log.DebugContext(ctx, "authorization code issued", slog.String("client_id", clientID), slog.String("subject", subject))
	s.authorizeRedirect(w, r, target, url.Values{"code": {code}})
}

// authorizeParams reads the parameters of an authorization request: the
// query of a GET, the form body of a POST (which then fills r.Form and
// r.PostForm, since the body is gone).
func (s *Server) authorizeParams(w http.ResponseWriter, r *http.Request) (form, *Error) {
	if r.Method == http.MethodPost {
		f, e := readForm(w, r, s.cfg.MaxBodyBytes)
		if e != nil {
			return nil, e
		}
		v := make(url.Values, len(f))
		for k, x := range f {
			v[k] = []string{x}
		}
		r.Form, r.PostForm = v, v
		return f, nil
	}
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest(dpop.CodeInvalidRequest, "the query is not valid form encoding", err)
	}
	return singleValues(values)
}

// authorizeRedirectURI picks the redirect URI of a request: sent, it must be
// one of the client's registered URIs, compared as strings (RFC 6749
// §3.1.2.3, RFC 9700 §2.1); omitted, the client must have registered exactly
// one (RFC 6749 §3.1.2.3).
func authorizeRedirectURI(c *store.Client, sent string) (string, bool) {
	if sent == "" {
		if len(c.RedirectURIs) != 1 {
			return "", false
		}
		return c.RedirectURIs[0], true
	}
	return sent, slices.Contains(c.RedirectURIs, sent)
}

// parseAuthorizeTarget parses a registered redirect URI, which must be
// absolute, without a fragment (RFC 6749 §3.1.2) and with a well-formed
// query, so that adding the response parameters keeps its own.
func parseAuthorizeTarget(uri, state string) (authzTarget, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return authzTarget{}, err
	}
	if !u.IsAbs() || strings.Contains(uri, "#") {
		return authzTarget{}, errors.New("handlers: redirect URI not absolute or with a fragment")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return authzTarget{}, err
	}
	return authzTarget{uri: u, query: q, state: state}, nil
}

// authorizeRedirect sends the user back to the client with params, state
// (RFC 6749 §4.1.2) and iss (RFC 9207 §2), added to the redirect URI's own
// query: 302 after a GET, 303 after a POST so that the browser does not post
// again.
func (s *Server) authorizeRedirect(w http.ResponseWriter, r *http.Request, t authzTarget, params url.Values) {
	q := make(url.Values, len(t.query)+len(params)+2)
	for k, v := range t.query {
		q[k] = v
	}
	for k, v := range params {
		q[k] = v
	}
	if t.state != "" {
		q.Set("state", t.state)
	}
	q.Set("iss", s.cfg.Issuer)
	u := *t.uri
	u.RawQuery = q.Encode()
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	h := w.Header()
	h.Set("Location", u.String())
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
}

// writeAuthorizePage writes an error page of the authorization endpoint.
// text is one of the fixed authzPage texts; nothing from the request appears.
func writeAuthorizePage(w http.ResponseWriter, status int, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	title := html.EscapeString(http.StatusText(status))
	io.WriteString(w, "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>"+title+
		"</title></head>\n<body>\n<h1>Authorization request refused</h1>\n<p>"+html.EscapeString(text)+"</p>\n</body>\n</html>\n")
}

// maxLoggedValue bounds request values written to the log: a query string
// can be large, and the log is not the place for attacker-sized strings.
const maxLoggedValue = 128

// logValue truncates an unverified request value for logging.
func logValue(v string) string {
	if len(v) <= maxLoggedValue {
		return v
	}
	return v[:maxLoggedValue] + "…"
}
