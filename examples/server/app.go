package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/middleware"
	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// The demo's registered clients and end user. Fixed and printed at start:
// this is a demonstration, not a deployment.
const (
	demoClient   = "demo"
	demoSecret   = "demo-secret"
	publicClient = "demo-public"
	redirectURI  = "http://127.0.0.1:8765/callback"
	demoUser     = "alice"
	demoPassword = "wonderland"
	// apiPrefix is where the protected API lives.
	apiPrefix = "/api"
)

// app is the wired-up demo: its handler and what must be released.
type app struct {
	handler http.Handler
	close   func()
	// defaults are the quotas the kit takes for flags left at 0: shares of
	// the memory store's replay cache, fixed numbers for a shared store.
	defaults dpop.Quota
}

// newApp builds the store, the authorization server and the API for issuer.
func newApp(ctx context.Context, cfg config, issuer string, logger *slog.Logger) (*app, error) {
	st, closeStore, err := openStore(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			closeStore()
		}
	}()
	if err := registerClients(ctx, st); err != nil {
		return nil, fmt.Errorf("registering the demo clients: %w", err)
	}

	// One nonce source serves the token endpoint and the API. It is
	// stateless: instances that share its secret accept each other's nonces.
	var nonces dpop.NonceSource
	if cfg.requireNonce {
		secret, err := nonceSecret(cfg.nonceSecret, logger)
		if err != nil {
			return nil, err
		}
		nonces, err = dpop.NewHMACNonceSource(dpop.HMACNonceOptions{Secret: secret})
		if err != nil {
			return nil, err
		}
	} else if cfg.nonceSecret != "" {
		logger.Warn("a nonce secret was given but -require-nonce is off: server nonces are not used")
	}

	// Each accepted proof is charged to per-party quotas of the replay
	// cache (-quota-*; 0 keeps the kit's defaults, negative is off): at the
	// token endpoint the client and the grant it redeems, at the API the
	// token's client and the access token.
	tokenQuota := dpop.Quota{PerClient: cfg.quotaClient, PerGrant: cfg.quotaGrant}
	apiQuota := dpop.Quota{PerClient: cfg.quotaClient, PerGrant: cfg.quotaToken}

	hcfg := handlers.Config{
		Issuer:       issuer,
		Store:        st,
		DPoP:         dpop.VerifierOptions{Nonces: nonces, Quota: tokenQuota},
		Authenticate: authenticate,
		Logger:       logger.With("component", "handlers"),
	}
	var validator middleware.TokenValidator = middleware.StoreValidator{Store: st}
	if cfg.tokenFormat == "jwt" {
		keys, err := newSigningKeys()
		if err != nil {
			return nil, err
		}
		hcfg.AccessTokenFormat = handlers.FormatJWT
		hcfg.SigningKeys = keys
		public, err := jwk.PublicSetOf(keys)
		if err != nil {
			return nil, err
		}
		// The API trusts the keys the authorization server signs with. A
		// separate resource server would fetch them from the JWKS URL
		// instead (JWTOptions.JWKSURL).
		validator, err = middleware.NewJWTValidator(ctx, middleware.JWTOptions{
			Issuer:   issuer,
			Audience: issuer, // the handlers' default aud
			Keys:     public,
		})
		if err != nil {
			return nil, err
		}
	}
	as, err := handlers.New(hcfg)
	if err != nil {
		return nil, err
	}

	protect, err := middleware.New(middleware.Options{
		ResourceURL: issuer,
		// The API shares the store's replay cache and the nonce source
		// with the token endpoint, so that instances behind one address
		// agree on both.
		DPoP:      dpop.VerifierOptions{ReplayCache: st, Nonces: nonces, Quota: apiQuota},
		Validator: validator,
		Logger:    logger.With("component", "middleware"),
	})
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	as.Mount(mux)
	// Protected resource metadata (RFC 9728): for the server as a whole, and
	// in the path form for the API under /api.
	for _, resource := range []string{issuer, issuer + apiPrefix} {
		md, err := middleware.MetadataHandler(middleware.ResourceMetadata{
			Resource:                resource,
			AuthorizationServers:    []string{issuer},
			ScopesSupported:         []string{"read", "write"},
			DPoPBoundTokensRequired: true,
		})
		if err != nil {
			return nil, err
		}
		mux.Handle("GET "+middleware.MetadataPath(resource), md)
	}
	mux.Handle("GET "+apiPrefix+"/hello", protect(middleware.RequireScope("read")(http.HandlerFunc(hello))))

	ok = true
	return &app{handler: middleware.ExposeDPoPHeaders(mux), close: closeStore, defaults: dpop.DefaultQuota(st)}, nil
}

// registerClients saves the two demo clients (replacing earlier ones, so
// that a shared store is fine to restart against).
func registerClients(ctx context.Context, st store.ClientStore) error {
	grants := []string{handlers.GrantClientCredentials, handlers.GrantAuthorizationCode, handlers.GrantRefreshToken}
	for _, c := range []*store.Client{
		{
			ID:           demoClient,
			SecretHash:   store.HashSecret(demoSecret),
			GrantTypes:   grants,
			RedirectURIs: []string{redirectURI},
			Scopes:       []string{"read", "write"},
			DPoPBound:    true,
		},
		{
			ID:           publicClient, // no secret: public, PKCE required
			GrantTypes:   grants[1:],
			RedirectURIs: []string{redirectURI},
			Scopes:       []string{"read", "write"},
			DPoPBound:    true,
		},
	} {
		if err := st.SaveClient(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// nonceSecret returns the configured secret, or a random one that only this
// process knows.
func nonceSecret(configured string, logger *slog.Logger) ([]byte, error) {
	if configured != "" {
		if len(configured) < 32 {
			return nil, fmt.Errorf("the nonce secret must be at least 32 bytes (it is %d); generate one with: openssl rand -hex 32", len(configured))
		}
		return []byte(configured), nil
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	logger.Info("server nonces keyed by a random secret: other instances will not accept them (set -nonce-secret or " + nonceSecretEnv + " to share one)")
	return secret, nil
}

// newSigningKeys generates the ES256 key that signs JWT access tokens. Its
// kid is its thumbprint. A real server loads its keys from a secret store,
// so that they survive restarts and are the same on every instance.
func newSigningKeys() (jwk.Set, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := jwk.FromRaw(priv)
	if err != nil {
		return nil, err
	}
	kid, err := dpop.Thumbprint(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := key.Set(jwk.KeyIDKey, kid); err != nil {
		return nil, err
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.ES256); err != nil {
		return nil, err
	}
	if err := key.Set(jwk.KeyUsageKey, jwk.ForSignature); err != nil {
		return nil, err
	}
	set := jwk.NewSet()
	if err := set.AddKey(key); err != nil {
		return nil, err
	}
	return set, nil
}

// authenticate is the host's end-user login at the authorization endpoint:
// HTTP Basic with the demo user, consent implied. Without valid credentials
// it asks for them with a Basic challenge and reports the request handled.
func authenticate(w http.ResponseWriter, r *http.Request, _ *handlers.AuthorizationRequest) (string, bool, error) {
	user, pass, ok := r.BasicAuth()
	if ok && equal(user, demoUser) && equal(pass, demoPassword) {
		return demoUser, false, nil
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="dpopkit demo", charset="UTF-8"`)
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "log in as alice / wonderland", http.StatusUnauthorized)
	return "", true, nil
}

// equal compares in constant time.
func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// hello is the protected API: it tells the caller who the token says it is.
func hello(w http.ResponseWriter, r *http.Request) {
	p, ok := middleware.PrincipalFrom(r.Context())
	if !ok {
		// Unreachable behind the middleware; never answer without one.
		http.Error(w, "no principal", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(struct {
		Message  string `json:"message"`
		Sub      string `json:"sub"`
		ClientID string `json:"client_id"`
		Scope    string `json:"scope"`
		JKT      string `json:"jkt"`
	}{"hello, " + p.Subject, p.Subject, p.ClientID, strings.Join(p.Scopes, " "), p.JKT})
}
