package handlers

import (
	"context"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/dpopkit/dpop"
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
	authzPageRequestURI   = "The authorization request refers to a pushed authorization request that this server does not know, that expired or that was already used. Nothing was sent back to the application that sent you here."
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
// authorization_code grant; invalid_scope when the scope is malformed (RFC
// 6749 §3.3: scope tokens separated by spaces) or Config.ScopePolicy refuses
// it; invalid_request for PKCE parameters that are missing where required
// (public clients always, every client with Config.RequirePKCE), a method
// other than S256 (RFC 9700 §2.1.1: "plain" is refused, and so is a
// code_challenge without a method, which RFC 7636 §4.3 defines as "plain"), a
// challenge that is not 43 base64url characters of a SHA-256 hash, or a
// dpop_jkt that is not a base64url SHA-256 JWK thumbprint (RFC 9449 §10);
// invalid_target for a resource parameter (RFC 8707 §2, which may repeat)
// that is malformed, not registered for the client, sent by a client that
// registers none, or refused by Config.ResourcePolicy, or for more than
// MaxResources of them (server_error when the policy fails).
//
// A valid request goes to Config.Authenticate with the granted scopes. When
// the Authenticator handled the request (a login page, say), nothing more is
// done; an error becomes server_error, an empty subject access_denied.
// Otherwise a fresh code is stored by its hash, bound to the client, the
// redirect_uri as sent (empty when it was omitted, RFC 6749 §4.1.3), the
// scope, the subject, the PKCE challenge, dpop_jkt and the granted resources
// (the audience of its tokens), for Config.CodeTTL, and
// the user is sent back with code, state and iss. Redirects are 302 for GET
// and 303 for POST; the registered URI's own query parameters are kept.
//
// A request with request_uri refers to a pushed authorization request (RFC
// 9126 §4, [Server.PushedAuthorizationHandler]): only client_id and
// request_uri are read from it, each at most once (other parameters are
// ignored and may repeat), and the pushed parameters take the place of the
// request's, checked again as above. A request_uri that is unknown, expired,
// already used or pushed by another client than client_id, or sent to a
// server that does not offer PAR, gets the error page (invalid_request_uri
// in the log): nothing is known of the request yet. Reading a pushed request
// does not spend it, so the page may be loaded again until the user logs in;
// it is spent when the code is issued, and a request spent meanwhile goes
// back to the client as invalid_request_uri. The code is bound to the key
// fixed at the PAR endpoint (RFC 9449 §10.1). With Config.RequirePAR a
// request without request_uri is sent back with invalid_request once its
// client and redirect URI are known good.
//
// For POST the body has been read when the Authenticator runs; r.Form and
// r.PostForm then hold the parameters as sent (with request_uri, the
// AuthorizationRequest holds the pushed ones). Changes the Authenticator
// makes to the AuthorizationRequest have no effect on the code.
func (s *Server) AuthorizeHandler() http.Handler {
	return http.HandlerFunc(s.authorize)
}

// authzTarget is where an authorization response goes: the redirect URI in
// use, as registered and parsed, with its own query, and the state to echo.
type authzTarget struct {
	raw   string
	uri   *url.URL
	query url.Values
	state string
}

// authzRefusal is every refusal of the authorization endpoint. Before the
// client and its redirect URI are known good it is shown as a page (page, with
// status); after, it goes back to the client as an RFC 6749 §4.1.2.1 error
// (code and description). fault marks the server's own failures, logged as
// errors.
type authzRefusal struct {
	status      int
	page        string
	code        dpop.ErrorCode
	description string
	cause       error
	fault       bool
}

// authzPage is a refusal shown as a page with one of the fixed authzPage texts.
func authzPage(status int, text string, cause error) *authzRefusal {
	return &authzRefusal{status: status, page: text, cause: cause, fault: status >= http.StatusInternalServerError}
}

// authzError is a refusal sent back to the client's redirect URI.
func authzError(code dpop.ErrorCode, description string, cause error) *authzRefusal {
	return &authzRefusal{code: code, description: description, cause: cause, fault: code == dpop.CodeServerError}
}

// oauthError is the refusal as the PAR endpoint answers it: an RFC 6749
// §5.2 JSON error (RFC 9126 §2.3), 400, or 500 for the server's own
// failures. Only refusals made with authzError have a code to answer with.
func (a *authzRefusal) oauthError() *Error {
	status := http.StatusBadRequest
	if a.fault {
		status = http.StatusInternalServerError
	}
	return oauthError(status, a.code, a.description, a.cause)
}

// authzExchange is one authorization request as far as it got: the client
// (once named), the target (once the redirect URI is known good), and the
// issued code.
type authzExchange struct {
	clientID    string
	redirectURI string
	target      *authzTarget
	code        string
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	var x authzExchange
	handled, refusal := s.authorizeCode(w, r, &x)
	if handled {
		return
	}
	s.renderAuthorize(w, r, &x, refusal)
}

// authorizeCode checks an authorization request and, once the host has
// authenticated the user, issues the code (x.code). It reports handled when
// the Authenticator answered the request itself.
func (s *Server) authorizeCode(w http.ResponseWriter, r *http.Request, x *authzExchange) (handled bool, _ *authzRefusal) {
	ctx := r.Context()
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		return false, authzPage(http.StatusMethodNotAllowed, authzPageMethod, ErrMethod)
	}
	if s.cfg.Authenticate == nil {
		return false, authzPage(http.StatusInternalServerError, authzPageUnconfigured, errAuthorizeUnavailable)
	}
	f, e := s.authorizeParams(w, r)
	if e != nil {
		text := authzPageMalformed
		if e.Status == http.StatusRequestEntityTooLarge {
			text = authzPageTooLarge
		}
		return false, authzPage(e.Status, text, e.Err)
	}

	// A pushed request (RFC 9126 §4) replaces the request's parameters
	// with the pushed ones, checked again below as if they had been sent.
	var pushed *pushedAuthorization
	if f.get(paramRequestURI) != "" {
		var refusal *authzRefusal
		if f, pushed, refusal = s.loadPushedRequest(ctx, f, x); refusal != nil {
			return false, refusal
		}
	}
	client, refusal := s.authorizeClient(ctx, f, x)
	if refusal != nil {
		return false, refusal
	}
	if pushed == nil && s.cfg.RequirePAR {
		return false, authzError(dpop.CodeInvalidRequest, "authorization requests must be pushed to the pushed authorization request endpoint first", errPARRequired)
	}
	granted, refusal := s.authorizeScope(ctx, f, client)
	if refusal != nil {
		return false, refusal
	}
	audience, e := s.grantAudience(ctx, client, f.resources)
	if e != nil {
		return false, authzError(e.Code, e.Description, e.Err)
	}
	challenge, method, jkt := f.get("code_challenge"), f.get("code_challenge_method"), f.get("dpop_jkt")
	if pushed != nil {
		// The key fixed at the PAR endpoint: dpop_jkt or the proof's key
		// (RFC 9449 §10.1).
		jkt = pushed.rec.DPoPJKT
	}

	// The end user, authenticated by the host.
	subject, handled, err := s.cfg.Authenticate(w, r, &AuthorizationRequest{
		Client:              client,
		RedirectURI:         x.target.raw,
		Scopes:              slices.Clone(granted),
		State:               x.target.state,
		CodeChallenge:       challenge,
		CodeChallengeMethod: method,
		DPoPJKT:             jkt,
		Resources:           slices.Clone(audience),
	})
	switch {
	case handled:
		return true, nil
	case err != nil:
		return false, authzError(dpop.CodeServerError, "the server could not authenticate the user", errors.Join(errAuthenticatorFailed, err))
	case subject == "":
		return false, authzError(dpop.CodeAccessDenied, "the user did not authorize the request", errNoUser)
	}
	if pushed != nil {
		// The authorization completes: the pushed request is spent, once
		// (RFC 9126 §4); of two concurrent completions one gets a code.
		if refusal := s.consumePushedRequest(ctx, pushed); refusal != nil {
			return false, refusal
		}
	}

	code := randomToken()
	rec := &store.AuthorizationCode{
		GrantID:             randomToken(),
		ClientID:            x.clientID,
		RedirectURI:         x.redirectURI,
		Scope:               strings.Join(granted, " "),
		Subject:             subject,
		CodeChallenge:       challenge,
		CodeChallengeMethod: method,
		DPoPJKT:             jkt,
		Resources:           audience,
		ExpiresAt:           s.cfg.Now().Add(s.cfg.CodeTTL),
	}
	if err := s.cfg.Store.SaveCode(ctx, store.HashToken(code), rec); err != nil {
		return false, authzError(dpop.CodeServerError, "the server cannot handle the request now", errors.Join(ErrStore, err))
	}
	x.code = code
	s.cfg.Logger.DebugContext(ctx, "authorization code issued", slog.String("client_id", x.clientID), slog.String("subject", subject))
	return false, nil
}

// authorizeClient finds the client and the redirect URI to answer at. Until
// both are known good (x.target set), a refusal is a page, never a redirect
// (RFC 6749 §4.1.2.1, §10.15).
func (s *Server) authorizeClient(ctx context.Context, f form, x *authzExchange) (*store.Client, *authzRefusal) {
	x.clientID = f.get("client_id")
	if x.clientID == "" {
		return nil, authzPage(http.StatusBadRequest, authzPageClient, ErrMissingParam)
	}
	client, err := s.cfg.Store.GetClient(ctx, x.clientID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, authzPage(http.StatusBadRequest, authzPageClient, errUnknownClient)
	case err != nil:
		return nil, authzPage(http.StatusServiceUnavailable, authzPageUnavailable, errors.Join(ErrStore, err))
	}
	x.redirectURI = f.get("redirect_uri")
	uri, ok := authorizeRedirectURI(client, x.redirectURI)
	if !ok {
		return nil, authzPage(http.StatusBadRequest, authzPageRedirect, ErrRedirectURI)
	}
	target, err := parseAuthorizeTarget(uri, f.get("state"))
	if err != nil {
		return nil, authzPage(http.StatusBadRequest, authzPageRedirect, errors.Join(errRedirectUnusable, err))
	}
	x.target = &target
	return client, nil
}

// authorizeScope checks what the request asks of the client's grant: the
// response type, the client's right to the code grant, the scope (through
// Config.ScopePolicy), PKCE and dpop_jkt (RFC 9449 §10). It returns the
// granted scopes. Its refusals go back to the client (the PAR endpoint
// answers them as JSON errors, authzRefusal.oauthError).
func (s *Server) authorizeScope(ctx context.Context, f form, client *store.Client) ([]string, *authzRefusal) {
	if f.get("request") != "" {
		// A request object (RFC 9101) would carry parameters the server
		// does not check: refused rather than ignored.
		return nil, authzError(dpop.CodeRequestNotSupported, "request objects are not supported", errRequestObject)
	}
	switch rt := f.get("response_type"); {
	case rt == "":
		return nil, authzError(dpop.CodeInvalidRequest, "response_type is missing", ErrMissingParam)
	case rt != "code":
		return nil, authzError(dpop.CodeUnsupportedResponseType, "only response_type code is supported", errUnsupportedResponse)
	}
	if !slices.Contains(client.GrantTypes, GrantAuthorizationCode) {
		return nil, authzError(dpop.CodeUnauthorizedClient, "the client may not use the authorization code grant", ErrGrantType)
	}
	requested, ok := parseScope(f.get("scope"))
	if !ok {
		return nil, authzError(dpop.CodeInvalidScope, "the scope is malformed", ErrScope)
	}
	granted, err := s.cfg.ScopePolicy(ctx, client, requested)
	switch {
	case errors.Is(err, ErrScope):
		return nil, authzError(dpop.CodeInvalidScope, "the requested scope is not allowed", err)
	case err != nil:
		return nil, authzError(dpop.CodeServerError, "the scope policy failed", err)
	}
	if refusal := checkAuthorizePKCE(f.get("code_challenge"), f.get("code_challenge_method"), client.Public() || s.cfg.RequirePKCE); refusal != nil {
		return nil, refusal
	}
	if jkt := f.get("dpop_jkt"); jkt != "" && !isBase64URLHash(jkt) {
		return nil, authzError(dpop.CodeInvalidRequest, "dpop_jkt is not a base64url SHA-256 JWK thumbprint", errMalformedJKT)
	}
	return granted, nil
}

// checkAuthorizePKCE checks the PKCE parameters of an authorization request
// (RFC 7636 §4.3): S256 only (RFC 9700 §2.1.1: "plain" is refused, and so is
// a challenge without a method, which means "plain"), a challenge of 43
// base64url characters, present whenever required.
func checkAuthorizePKCE(challenge, method string, required bool) *authzRefusal {
	switch {
	case method != "" && method != PKCEMethodS256:
		return authzError(dpop.CodeInvalidRequest, "code_challenge_method must be S256", ErrPKCE)
	case challenge == "" && method != "":
		return authzError(dpop.CodeInvalidRequest, "code_challenge is missing", ErrPKCE)
	case challenge == "" && required:
		return authzError(dpop.CodeInvalidRequest, "PKCE is required: code_challenge is missing", ErrPKCE)
	case challenge != "" && method == "":
		return authzError(dpop.CodeInvalidRequest, "code_challenge_method must be S256", ErrPKCE)
	case challenge != "" && !isBase64URLHash(challenge):
		return authzError(dpop.CodeInvalidRequest, "code_challenge is not a base64url SHA-256 hash", ErrPKCE)
	}
	return nil
}

// renderAuthorize answers an authorization request in one place: the code,
// an error sent back to the client, or an error page, each logged once.
func (s *Server) renderAuthorize(w http.ResponseWriter, r *http.Request, x *authzExchange, refusal *authzRefusal) {
	if refusal == nil {
		s.authorizeRedirect(w, r, x.target, url.Values{"code": {x.code}})
		return
	}
	level := slog.LevelInfo
	if refusal.fault {
		level = slog.LevelError
	}
	attrs := []any{"reason", refusal.cause, "method", r.Method, "client_id", logValue(x.clientID)}
	if x.target == nil {
		if errors.Is(refusal.cause, ErrRedirectURI) {
			attrs = append(attrs, "redirect_uri", logValue(x.redirectURI))
		}
		s.cfg.Logger.Log(r.Context(), level, "authorization request refused", attrs...)
		writeAuthorizePage(w, refusal.status, refusal.page)
		return
	}
	s.cfg.Logger.Log(r.Context(), level, "authorization request refused", append(attrs, "error", refusal.code)...)
	s.authorizeRedirect(w, r, x.target, url.Values{"error": {string(refusal.code)}, "error_description": {refusal.description}})
}

// authorizeParams reads the parameters of an authorization request: the
// query of a GET, the form body of a POST (which then fills r.Form and
// r.PostForm, since the body is gone). A query with request_uri keeps only
// client_id and request_uri (pushedReference): the pushed parameters replace
// the rest, which may then repeat (RFC 9126 §4).
func (s *Server) authorizeParams(w http.ResponseWriter, r *http.Request) (form, *Error) {
	if r.Method == http.MethodPost {
		f, e := readForm(w, r, s.cfg.MaxBodyBytes)
		if e != nil {
			return form{}, e
		}
		v := f.values()
		r.Form, r.PostForm = v, v
		return f, nil
	}
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return form{}, badRequest(dpop.CodeInvalidRequest, "the query is not valid form encoding", err)
	}
	if _, ok := values[paramRequestURI]; ok {
		return pushedReference(values)
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
	return authzTarget{raw: uri, uri: u, query: q, state: state}, nil
}

// authorizeRedirect sends the user back to the client with params, state
// (RFC 6749 §4.1.2) and iss (RFC 9207 §2), added to the redirect URI's own
// query: 302 after a GET, 303 after a POST so that the browser does not post
// again.
func (s *Server) authorizeRedirect(w http.ResponseWriter, r *http.Request, t *authzTarget, params url.Values) {
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
	if r.Method == http.MethodPost || s.fapi2() {
		// FAPI 2.0 §5.3.2.2: 303, so that no browser repeats a POST.
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
