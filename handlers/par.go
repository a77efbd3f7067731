package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// DefaultPARTTL is how long a pushed authorization request lives by default
// (Config.PARTTL): its request_uri's expires_in (RFC 9126 §2.2).
const DefaultPARTTL = time.Minute

// maxPARTTL bounds Config.PARTTL. RFC 9126 §2.2 asks for a short lifetime;
// the FAPI 2.0 conformance suite expects expires_in below 600.
const maxPARTTL = 10*time.Minute - time.Second

// requestURIPrefix starts every request_uri the PAR endpoint issues
// (RFC 9126 §2.2).
const requestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// paramRequestURI is the request_uri parameter (RFC 9126 §4, RFC 9101 §5).
const paramRequestURI = "request_uri"

// Causes of refusals about pushed authorization requests; they appear in
// logs.
var (
	errPARUnavailable   = errors.New("handlers: pushed authorization requests are not offered")
	errPARRequired      = errors.New("handlers: authorization request not pushed (Config.RequirePAR)")
	errRequestURIInPAR  = errors.New("handlers: request_uri sent to the PAR endpoint")
	errRequestURI       = errors.New("handlers: invalid_request_uri: unknown, expired or used request_uri")
	errRequestURIClient = errors.New("handlers: invalid_request_uri: request_uri pushed by another client")
	errPushedKey        = errors.New("handlers: DPoP proof and dpop_jkt name different keys")
)

// parResponse is the answer of the PAR endpoint (RFC 9126 §2.2).
type parResponse struct {
	RequestURI string `json:"request_uri"`
	ExpiresIn  int64  `json:"expires_in"`
}

// parOffered reports whether the server offers pushed authorization
// requests: its store keeps them (store.PushedRequestStore) and it has an
// authorization endpoint (Config.Authenticate) to use them at.
func (s *Server) parOffered() bool { return s.pushed != nil && s.cfg.Authenticate != nil }

// PushedAuthorizationHandler returns the pushed authorization request (PAR)
// endpoint (RFC 9126 §2), with DPoP binding of the code (RFC 9449 §10.1).
// Mount registers it at Config.Paths.PushedAuthorization (under the issuer's
// path) when the server offers it: when Config.Store implements
// store.PushedRequestStore and Config.Authenticate is set. Otherwise the
// handler answers every request with 404.
//
// A request is a POST with an application/x-www-form-urlencoded body of at
// most Config.MaxBodyBytes (other methods get 405), authenticated like one to
// the token endpoint; a public client names itself with client_id (RFC 9126
// §2.1). Its parameters are those of an authorization request, checked as
// the authorization endpoint checks them, with two differences: redirect_uri
// is required (the checklist of FAPI 2.0), and a request_uri parameter is
// refused (RFC 9126 §2.1). Every refusal is an RFC 6749 §5.2 JSON error (RFC
// 9126 §2.3): 401 invalid_client, 400 with the code the authorization
// endpoint would have sent back, 405, 413, 503 when the store fails.
//
// A DPoP header is checked as a proof of a POST to the endpoint's URL (RFC
// 9449 §10.1) and binds the code to the proof's key; with a dpop_jkt
// parameter too, both must name the same key (400 invalid_dpop_proof
// otherwise). A client registered as DPoP-bound must send one of them. The
// proof takes its place in the replay cache once every other check passed.
//
// The answer is 201 with a request_uri of 256 random bits and its lifetime,
// Config.PARTTL, in expires_in. The pushed parameters are kept, client
// credentials removed, under the hash of the request_uri until then; the
// authorization endpoint uses them when it gets the request_uri with the
// same client_id, and spends them when it issues the code.
func (s *Server) PushedAuthorizationHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var clientID string
		resp, e := s.pushAuthorization(w, r, &clientID)
		if nonce, err := s.verifier.Nonce(r.Context()); err == nil && nonce != "" && (e == nil || e.Nonce == "") {
			w.Header().Set("DPoP-Nonce", nonce)
		}
		if e != nil {
			s.cfg.Logger.InfoContext(r.Context(), "pushed authorization request refused",
				append([]any{"error", e.Code, "client_id", clientID, "reason", e.Err}, dpop.LogAttrs(e.Err)...)...)
			writeError(w, e)
			return
		}
		writeJSON(w, http.StatusCreated, resp)
	})
}

func (s *Server) pushAuthorization(w http.ResponseWriter, r *http.Request, clientID *string) (*parResponse, *Error) {
	ctx := r.Context()
	if !s.parOffered() {
		return nil, oauthError(http.StatusNotFound, dpop.CodeInvalidRequest, "pushed authorization requests are not offered", errPARUnavailable)
	}
	f, e := readForm(w, r, s.cfg.MaxBodyBytes)
	if e != nil {
		return nil, e
	}
	client, pending, e := s.authenticateClientLater(r, f)
	if e != nil {
		return nil, e
	}
	*clientID = client.ID
	if f.get(paramRequestURI) != "" {
		return nil, badRequest(dpop.CodeInvalidRequest, "request_uri is not allowed in a pushed authorization request", errRequestURIInPAR)
	}
	// The authorization endpoint's checks, with redirect_uri required.
	redirect := f.get("redirect_uri")
	if redirect == "" {
		return nil, badRequest(dpop.CodeInvalidRequest, "redirect_uri is required", ErrMissingParam)
	}
	if _, ok := authorizeRedirectURI(client, redirect); !ok {
		return nil, badRequest(dpop.CodeInvalidRequest, "redirect_uri is not registered for the client", ErrRedirectURI)
	}
	if _, err := parseAuthorizeTarget(redirect, ""); err != nil {
		return nil, badRequest(dpop.CodeInvalidRequest, "redirect_uri is not usable", errors.Join(errRedirectUnusable, err))
	}
	if _, refusal := s.authorizeScope(ctx, f, client); refusal != nil {
		return nil, refusal.oauthError()
	}
	if _, e := s.grantAudience(ctx, client, f.resources); e != nil {
		return nil, e
	}
	jkt, proof, e := s.pushedKey(r, client, f.get("dpop_jkt"))
	if e != nil {
		return nil, e
	}
	// The client's assertion, then the proof: spent only now, when every
	// check that spends nothing has passed.
	if e := s.acceptCheckedProof(ctx, dpop.EndpointPAR, client, pending, proof); e != nil {
		return nil, e
	}

	params := f.values()
	params.Set("client_id", client.ID)
	for _, k := range []string{"client_secret", "client_assertion", "client_assertion_type"} {
		params.Del(k)
	}
	uri := requestURIPrefix + randomToken()
	rec := &store.PushedRequest{
		ClientID:  client.ID,
		Params:    params.Encode(),
		DPoPJKT:   jkt,
		ExpiresAt: s.cfg.Now().Add(s.cfg.PARTTL),
	}
	if err := s.pushed.SavePushedRequest(ctx, store.HashToken(uri), rec); err != nil {
		return nil, s.storeErr(ctx, err)
	}
	s.cfg.Logger.DebugContext(ctx, "authorization request pushed", "client_id", client.ID)
	return &parResponse{RequestURI: uri, ExpiresIn: int64(s.cfg.PARTTL / time.Second)}, nil
}

// pushedKey is the key a pushed request binds its code to (RFC 9449 §10.1):
// the DPoP proof's, checked against the PAR endpoint's URL without being
// recorded, or the dpop_jkt parameter; both must agree. A DPoP-bound client
// must send one of them.
func (s *Server) pushedKey(r *http.Request, client *store.Client, param string) (string, *dpop.Proof, *Error) {
	proofs := r.Header.Values("DPoP")
	if len(proofs) == 0 {
		if param == "" && client.DPoPBound {
			e := badRequest(dpop.CodeInvalidProof, "a DPoP proof or dpop_jkt is required", ErrProofRequired)
			s.proofChecked(dpop.EndpointPAR, client, dpop.ReasonMissing, e)
			return "", nil, e
		}
		return param, nil, nil
	}
	p, err := s.verifier.Check(r.Context(), dpop.Request{
		Method: r.Method, URL: s.url(s.cfg.Paths.PushedAuthorization), Proofs: proofs,
		BoundJKT: param, Client: client.ID,
	})
	if err != nil {
		e := proofError(err)
		if errors.Is(err, dpop.ErrKeyMismatch) {
			e = badRequest(dpop.CodeInvalidProof, "the DPoP proof's key does not match dpop_jkt", errors.Join(errPushedKey, err))
		}
		s.proofChecked(dpop.EndpointPAR, client, dpop.ReasonOf(err), e)
		return "", nil, e
	}
	return p.JKT, p, nil
}

// pushedAuthorization is a pushed request in use at the authorization
// endpoint: the hash of its request_uri and its record.
type pushedAuthorization struct {
	hash store.TokenHash
	rec  *store.PushedRequest
}

// pushedReference reads the query of an authorization request that refers
// to a pushed request: only client_id and request_uri count, each at most
// once; the rest, which the pushed parameters replace, may repeat (RFC 9126
// §4).
func pushedReference(values url.Values) (form, *Error) {
	f := form{one: map[string]string{}}
	for _, k := range []string{"client_id", paramRequestURI} {
		switch vs := values[k]; {
		case len(vs) > 1:
			return form{}, badRequest(dpop.CodeInvalidRequest, "a parameter is repeated", ErrRepeatedParam)
		case len(vs) == 1 && vs[0] != "":
			f.one[k] = vs[0]
		}
	}
	return f, nil
}

// loadPushedRequest resolves the request_uri of an authorization request
// (RFC 9126 §4) without spending it, so that the page may be loaded again
// before the user logs in, and returns the pushed parameters in place of the
// request's. Until it is resolved nothing about the request is trusted: a
// request_uri that is unknown, expired, used or another client's is
// refused with a page, never a redirect.
func (s *Server) loadPushedRequest(ctx context.Context, f form, x *authzExchange) (form, *pushedAuthorization, *authzRefusal) {
	x.clientID = f.get("client_id")
	if x.clientID == "" {
		return form{}, nil, authzPage(http.StatusBadRequest, authzPageClient, ErrMissingParam)
	}
	if s.pushed == nil {
		return form{}, nil, authzPage(http.StatusBadRequest, authzPageRequestURI, errPARUnavailable)
	}
	h := store.HashToken(f.get(paramRequestURI))
	rec, err := s.pushed.GetPushedRequest(ctx, h)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConsumed):
		return form{}, nil, authzPage(http.StatusBadRequest, authzPageRequestURI, errors.Join(errRequestURI, err))
	case err != nil:
		return form{}, nil, authzPage(http.StatusServiceUnavailable, authzPageUnavailable, errors.Join(ErrStore, err))
	case rec.ClientID != x.clientID:
		return form{}, nil, authzPage(http.StatusBadRequest, authzPageRequestURI, errRequestURIClient)
	case !s.cfg.Now().Before(rec.ExpiresAt):
		return form{}, nil, authzPage(http.StatusBadRequest, authzPageRequestURI, errors.Join(errRequestURI, store.ErrExpired))
	}
	values, err := url.ParseQuery(rec.Params)
	if err != nil {
		return form{}, nil, authzPage(http.StatusServiceUnavailable, authzPageUnavailable, errors.Join(ErrStore, err))
	}
	pf, e := singleValues(values)
	if e != nil {
		return form{}, nil, authzPage(http.StatusServiceUnavailable, authzPageUnavailable, errors.Join(ErrStore, e))
	}
	pf.one["client_id"] = rec.ClientID
	return pf, &pushedAuthorization{hash: h, rec: rec}, nil
}

// consumePushedRequest spends the pushed request when its authorization
// completes. The client and its redirect URI are known good by then, so a
// request spent meanwhile (a lost race, a second tab) or expired goes back
// to the client as invalid_request_uri.
func (s *Server) consumePushedRequest(ctx context.Context, p *pushedAuthorization) *authzRefusal {
	_, err := s.pushed.ConsumePushedRequest(ctx, p.hash)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConsumed):
		return authzError(dpop.CodeInvalidRequestURI, "the request_uri is expired or already used", errors.Join(errRequestURI, err))
	}
	return authzError(dpop.CodeServerError, "the server cannot handle the request now", errors.Join(ErrStore, err))
}
