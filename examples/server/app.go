package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/handlers"
	"github.com/dpopkit/dpop/middleware"
	dpopotel "github.com/dpopkit/dpop/otel"
	"github.com/dpopkit/dpop/store"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// The demo's registered clients and end user. Fixed and printed at start:
// this is a demonstration, not a deployment.
const (
	demoClient   = "demo"
	demoSecret   = "demo-secret"
	publicClient = "demo-public"
	// rsClient is the /api resource server's own client: it may introspect
	// the tokens meant for /api (RFC 7662 §2.1, §4) and gets no token.
	rsClient     = "demo-rs"
	rsSecret     = "demo-rs-secret"
	redirectURI  = "http://127.0.0.1:8765/callback"
	demoUser     = "alice"
	demoPassword = "wonderland"
)

// The protected APIs, each under the issuer's path: its prefix, and its
// resource identifier (RFC 8707 §2) is the issuer followed by it.
const (
	apiPrefix     = "/api"
	billingPrefix = "/billing"
)

// tenantClaim is the host claim (handlers.Config.Claims) the demo adds to
// every access token: the issuer's path without its leading slash, or
// defaultTenant for an issuer without a path.
const (
	tenantClaim   = "tenant"
	defaultTenant = "default"
)

// site is where the demo lives: the issuer as the kit normalises it, split
// into its origin (scheme://host[:port]) and its path ("" or "/tenant1").
// Every endpoint and API is under the path; the htu of a proof is the
// origin followed by the request path.
type site struct {
	issuer, origin, path string
}

// resource is the identifier of the API under prefix: the issuer followed
// by it.
func (s site) resource(prefix string) string { return s.issuer + prefix }

// tenant is the value of the tenant claim.
func (s site) tenant() string {
	if s.path == "" {
		return defaultTenant
	}
	return strings.TrimPrefix(s.path, "/")
}

// newSite normalises an issuer as handlers.New does (dpop.NormalizeHTU, no
// trailing slash) so that the resources, the APIs' paths and the metadata
// agree with it. It refuses what handlers.New would refuse (a query,
// fragment or userinfo) and an empty path segment, which http.ServeMux
// would redirect away from.
func newSite(raw string) (site, error) {
	n, err := dpop.NormalizeHTU(raw)
	if err != nil || strings.ContainsAny(raw, "?#") {
		return site{}, fmt.Errorf("-issuer %q must be an absolute http(s) URL without query or fragment", raw)
	}
	if u, err := url.Parse(n); err != nil || u.User != nil {
		return site{}, fmt.Errorf("-issuer %q must not have userinfo", raw)
	}
	s := site{issuer: strings.TrimSuffix(n, "/")}
	s.origin = s.issuer
	if i := strings.Index(s.issuer, "://"); i >= 0 {
		if j := strings.IndexByte(s.issuer[i+3:], '/'); j >= 0 {
			s.origin, s.path = s.issuer[:i+3+j], s.issuer[i+3+j:]
		}
	}
	if strings.Contains(s.path, "//") {
		return site{}, fmt.Errorf("-issuer %q has an empty path segment", raw)
	}
	return s, nil
}

// app is the wired-up demo: its handler and what must be released.
type app struct {
	handler http.Handler
	close   func()
	// defaults are the quotas the kit takes for flags left at 0: shares of
	// the memory store's replay cache, fixed numbers for a shared store.
	defaults dpop.Quota
	// paths are where the authorization server's endpoints are
	// (handlers.Server.MountPaths), under the issuer's path.
	paths handlers.Paths
}

// Operational endpoints, at the root of the demo's address whatever the
// issuer's path: one process, one set of metrics and one store.
const (
	metricsPath = "/metrics"
	healthPath  = "/healthz"
	readyPath   = "/readyz"
)

// observability is the demo's metrics: the OpenTelemetry adapter over a
// MeterProvider whose only reader is the Prometheus exporter, on a registry
// of its own (so /metrics shows the kit's metrics and nothing the process
// registered elsewhere).
type observability struct {
	hooks    *dpop.Hooks
	metrics  http.Handler
	shutdown func()
}

func newObservability(st store.Store) (*observability, error) {
	reg := prometheus.NewRegistry()
	// Without the otel_scope_* labels: every series is the adapter's.
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	opts := dpopotel.Options{MeterProvider: mp}
	// The memory store tells its replay cache's fill level; Redis and
	// PostgreSQL do not, and have no gauge.
	if stats, ok := st.(dpop.ReplayCacheStats); ok {
		opts.ReplayCache = stats
	}
	a, err := dpopotel.New(opts)
	if err != nil {
		mp.Shutdown(context.Background())
		return nil, err
	}
	return &observability{
		hooks:   a.Hooks(),
		metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		shutdown: func() {
			a.Close()
			mp.Shutdown(context.Background())
		},
	}, nil
}

// healthy is GET /healthz: the process is up and serving.
func healthy(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, `{"status":"up"}`+"\n")
}

// newApp builds the store, the authorization server and the APIs for the
// issuer of s.
func newApp(ctx context.Context, cfg config, s site, logger *slog.Logger) (*app, error) {
	raw, closeRaw, err := openStore(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	obs, err := newObservability(raw)
	if err != nil {
		closeRaw()
		return nil, err
	}
	closeStore := func() { closeRaw(); obs.shutdown() }
	ok := false
	defer func() {
		if !ok {
			closeStore()
		}
	}()
	// Every store call of the handlers and the middleware is timed
	// (dpop_store_duration_seconds); the registrations below are not.
	st := store.Instrument(raw, obs.hooks)
	if err := registerClients(ctx, raw, s, demoClients(s, cfg.jwtClients, cfg.profile == profileFAPI2), logger); err != nil {
		return nil, fmt.Errorf("registering the demo clients: %w", err)
	}

	// One nonce source serves the token endpoint and the APIs. It is
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
	// token endpoint the client and the grant it redeems, at each API the
	// token's client and the access token.
	tokenQuota := dpop.Quota{PerClient: cfg.quotaClient, PerGrant: cfg.quotaGrant}
	apiQuota := dpop.Quota{PerClient: cfg.quotaClient, PerGrant: cfg.quotaToken}

	hcfg := handlers.Config{
		Issuer:       s.issuer,
		Store:        st,
		DPoP:         dpop.VerifierOptions{Nonces: nonces, Quota: tokenQuota},
		Authenticate: authenticate,
		// The host's claim on every access token: in a JWT, in an opaque
		// token's record, in introspection answers.
		Claims: func(context.Context, *store.Client, *store.AccessToken) (map[string]any, error) {
			return map[string]any{tenantClaim: s.tenant()}, nil
		},
		Logger: logger.With("component", "handlers"),
		// The kit's stores, instrumented: the one-call path is theirs.
		OneRoundTrip: true,
		// "" or handlers.ProfileFAPI2: PAR and PKCE required, private_key_jwt
		// only, PS256/ES256/EdDSA (the JWT access tokens' key is ES256),
		// 303 redirects.
		Profile: profileOf(cfg.profile),
		Hooks:   obs.hooks,
	}
	// The validator reads tokens; the audience is the middleware's to
	// check, each API against its own identifier.
	// The kit's stores, instrumented: the one-call paths are theirs.
	var validator middleware.TokenValidator = middleware.StoreValidator{Store: st, OneRoundTrip: true}
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
		// The APIs trust the keys the authorization server signs with. A
		// separate resource server would fetch them from the JWKS URL
		// instead (JWTOptions.JWKSURL).
		validator, err = middleware.NewJWTValidator(ctx, middleware.JWTOptions{Issuer: s.issuer, Keys: public})
		if err != nil {
			return nil, err
		}
	}
	as, err := handlers.New(hcfg)
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	as.Mount(mux)
	// Each API is a resource server of its own: a middleware that accepts
	// only tokens for its identifier (RFC 8707), and its protected resource
	// metadata (RFC 9728) naming that identifier. They share the store's
	// replay cache and the nonce source with the token endpoint, so that
	// instances behind one address agree on both. The htu a proof carries
	// is ResourceURL followed by the request path, which holds the
	// issuer's path: ResourceURL is the origin.
	for _, prefix := range []string{apiPrefix, billingPrefix} {
		resource := s.resource(prefix)
		protect, err := middleware.New(middleware.Options{
			ResourceURL: s.origin,
			Audiences:   []string{resource},
			DPoP:        dpop.VerifierOptions{ReplayCache: st, Nonces: nonces, Quota: apiQuota},
			Validator:   validator,
			Logger:      logger.With("component", "middleware", "resource", resource),
			Hooks:       obs.hooks,
		})
		if err != nil {
			return nil, err
		}
		md, err := middleware.MetadataHandler(middleware.ResourceMetadata{
			Resource:                resource,
			AuthorizationServers:    []string{s.issuer},
			ScopesSupported:         []string{"read", "write"},
			DPoPBoundTokensRequired: true,
		})
		if err != nil {
			return nil, err
		}
		mux.Handle("GET "+middleware.MetadataPath(resource), md)
		mux.Handle("GET "+s.path+prefix+"/hello", protect(middleware.RequireScope("read")(http.HandlerFunc(hello))))
	}

	// The protected resource metadata of the server as a whole, at
	// /.well-known/oauth-protected-resource (part of the demo's fixed
	// interface since before the APIs had identifiers of their own): it
	// names the issuer, which no token is for; clients discover an API
	// through its own document above.
	md, err := middleware.MetadataHandler(middleware.ResourceMetadata{
		Resource:                s.issuer,
		AuthorizationServers:    []string{s.issuer},
		ScopesSupported:         []string{"read", "write"},
		DPoPBoundTokensRequired: true,
	})
	if err != nil {
		return nil, err
	}
	mux.Handle("GET "+middleware.MetadataPath(s.issuer), md)

	// Metrics, liveness and readiness at the root, not under the issuer's
	// path. Readiness pings the store (every store the demo opens is a
	// store.Pinger): 503 while Redis or PostgreSQL cannot be reached.
	mux.Handle("GET "+metricsPath, obs.metrics)
	mux.HandleFunc("GET "+healthPath, healthy)
	if p, isPinger := st.(store.Pinger); isPinger {
		mux.Handle("GET "+readyPath, store.ReadinessHandler(p, store.ReadinessOptions{Logger: logger.With("component", "readiness")}))
	} else {
		mux.HandleFunc("GET "+readyPath, healthy)
	}

	ok = true
	return &app{handler: middleware.ExposeDPoPHeaders(mux), close: closeStore, defaults: dpop.DefaultQuota(st), paths: as.MountPaths()}, nil
}

// profileOf maps -profile to handlers.Config.Profile.
func profileOf(flag string) string {
	if flag == profileFAPI2 {
		return handlers.ProfileFAPI2
	}
	return ""
}

// demoClients are the demo's registrations for the issuer of s: their
// resources are its APIs' identifiers. Under the FAPI 2.0 profile (fapi2)
// only the -jwt-client clients: demo and demo-rs authenticate with a
// secret and demo-public with nothing, which the profile refuses.
func demoClients(s site, jwtClients []jwtClient, fapi2 bool) []*store.Client {
	grants := []string{handlers.GrantClientCredentials, handlers.GrantAuthorizationCode, handlers.GrantRefreshToken}
	api, billing := s.resource(apiPrefix), s.resource(billingPrefix)
	clients := []*store.Client{
		{
			ID:           demoClient,
			SecretHash:   store.HashSecret(demoSecret),
			GrantTypes:   grants,
			RedirectURIs: []string{redirectURI},
			Scopes:       []string{"read", "write"},
			// Without a resource parameter, tokens for both APIs.
			Resources: []string{api, billing},
			DPoPBound: true,
		},
		{
			ID:           publicClient, // no secret: public, PKCE required
			GrantTypes:   grants[1:],
			RedirectURIs: []string{redirectURI},
			Scopes:       []string{"read", "write"},
			Resources:    []string{api},
			DPoPBound:    true,
		},
		{
			// The /api resource server: no grant, no token of its own;
			// it introspects the tokens meant for /api.
			ID:         rsClient,
			SecretHash: store.HashSecret(rsSecret),
			Resources:  []string{api},
			Introspect: true,
		},
	}
	if fapi2 {
		clients = nil
	}
	for _, c := range jwtClients {
		clients = append(clients, c.registration(s))
	}
	return clients
}

// registerClients saves the demo clients (replacing earlier ones, so that a
// shared store is fine to restart against). Their resources name the
// issuer: a store shared by demos of different issuers holds the
// registrations of the last one to start, and the others' tokens stop
// working, so it warns when it replaces another issuer's.
func registerClients(ctx context.Context, st store.ClientStore, s site, clients []*store.Client, logger *slog.Logger) error {
	for _, c := range clients {
		if old, err := st.GetClient(ctx, c.ID); err == nil && len(old.Resources) > 0 && !slices.Equal(old.Resources, c.Resources) {
			logger.Warn("replacing the registration of a demo of another issuer in this store: its clients' tokens will name this issuer's APIs (give each issuer its own -store-namespace)",
				"client_id", c.ID)
		}
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

// hello is each protected API: it tells the caller who the token says it
// is, and the tenant the token's host claim names.
func hello(w http.ResponseWriter, r *http.Request) {
	p, ok := middleware.PrincipalFrom(r.Context())
	if !ok {
		// Unreachable behind the middleware; never answer without one.
		http.Error(w, "no principal", http.StatusInternalServerError)
		return
	}
	tenant, _ := p.Claims[tenantClaim].(string)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(struct {
		Message  string `json:"message"`
		Sub      string `json:"sub"`
		ClientID string `json:"client_id"`
		Scope    string `json:"scope"`
		JKT      string `json:"jkt"`
		Tenant   string `json:"tenant,omitempty"`
	}{"hello, " + p.Subject, p.Subject, p.ClientID, strings.Join(p.Scopes, " "), p.JKT, tenant})
}
