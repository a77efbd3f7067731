// Command server is the dpopkit demo: an OAuth 2.0 authorization server that
// issues DPoP-bound access tokens (package handlers) and two APIs that accept
// them (package middleware), mounted on one http.ServeMux as a host
// application would do it.
//
//	go run ./examples/server                     # http://127.0.0.1:8080
//	go run ./examples/server -require-nonce -token-format jwt
//	go run ./examples/server -issuer http://127.0.0.1:8080/tenant1
//
// The APIs are GET /api/hello and GET /billing/hello, two resource servers
// whose identifiers (RFC 8707 resource indicators) are the issuer followed
// by /api and by /billing: each accepts only tokens whose audience names it.
// With an issuer that has a path, every endpoint and API is under that path
// (/tenant1/oauth2/token, /tenant1/api/hello) and the authorization server
// metadata is at /.well-known/oauth-authorization-server/tenant1.
//
// It registers three clients: a confidential "demo" (secret "demo-secret"),
// which may get tokens for both APIs (for both at once when it sends no
// resource parameter); a public "demo-public" (PKCE), for /api only; and
// "demo-rs" (secret "demo-rs-secret"), the /api resource server's own
// client, which may introspect the tokens meant for /api and gets none. One
// end user, alice / wonderland, logs in with HTTP Basic at the authorization
// endpoint. Every access token carries the host claim "tenant" (the
// issuer's path, or "default"), which the APIs show. Everything is kept in
// memory unless -store names a shared store.
//
// With -profile fapi2 the authorization server runs under the FAPI 2.0
// Security Profile (handlers.ProfileFAPI2): authorization requests must be
// pushed (PAR, RFC 9126) with PKCE S256, clients authenticate with
// private_key_jwt only, and redirects are 303. demo, demo-public and
// demo-rs cannot comply and are not registered, so only the clients of
// -jwt-client ID=FILE can get tokens; without any, the server still starts
// (its metadata can be read) and its banner says that no client can do
// anything. A shared store may still hold demo's registration from an
// earlier run: the profile refuses it (invalid_client) all the same.
//
//	go run ./examples/client -client-key fapi.pem -kid k1 -jwks > fapi-jwks.json
//	go run ./examples/server -profile fapi2 -jwt-client fapi-client=fapi-jwks.json
//	go run ./examples/client -mode fapi -client-id fapi-client -client-key fapi.pem -kid k1
//
// At the root of its address, whatever the issuer's path, it serves GET
// /metrics (the kit's metrics through the OpenTelemetry adapter,
// github.com/dpopkit/dpop/otel, in the Prometheus text format), GET
// /healthz (200 while the process serves) and GET /readyz
// (store.ReadinessHandler: 200, or 503 while Redis or PostgreSQL cannot be
// reached).
//
// This is a demonstration: the secrets are fixed and printed, and it speaks
// plain HTTP on a loopback address. See the repository README for what a
// real deployment must do differently.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/examples/internal/serve"
)

// config is what the command line selects.
type config struct {
	addr         string
	issuer       string
	requireNonce bool
	tokenFormat  string
	store        string
	redisURL     string
	// redisCluster is -redis-cluster: redisURL names a Redis Cluster.
	redisCluster bool
	// redisReplicas is -redis-replicas: redisstore.Options.Replicas.
	redisReplicas int
	postgresURL   string
	nonceSecret   string
	namespace     string
	replayCap     int
	// Proof quotas (dpop.Quota), in replay entries: 0 selects the kit's
	// default, negative turns the quota off.
	quotaClient, quotaToken, quotaGrant int
	// jwtClients are the -jwt-client registrations.
	jwtClients jwtClientFlags
	// profile is -profile: "" or profileFAPI2.
	profile string
}

// profileFAPI2 is the value of -profile that runs the authorization server
// under handlers.ProfileFAPI2.
const profileFAPI2 = "fapi2"

// maxQuota bounds the quota flags: a thousand times the default replay
// cache, as good as no quota (a typo, not a setting, goes beyond it).
const maxQuota = 100_000_000

// nonceSecretEnv names the environment variable read when -nonce-secret is
// not given.
const nonceSecretEnv = "DPOPKIT_NONCE_SECRET"

// shutdownTimeout bounds how long in-flight requests may take once a signal
// asks the server to stop.
const shutdownTimeout = 10 * time.Second

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, logger); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line; usage and errors go to errOut.
func parseFlags(args []string, errOut io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "`address` to listen on (port 0 picks a free port)")
	fs.StringVar(&cfg.issuer, "issuer", "", "public base `URL` of the server, the OAuth issuer (default \"http://\" + the address); with a path, such as http://127.0.0.1:8080/tenant1, every endpoint and API is under that path")
	fs.BoolVar(&cfg.requireNonce, "require-nonce", false, "require server nonces (DPoP-Nonce) at the token endpoint and the APIs")
	fs.StringVar(&cfg.tokenFormat, "token-format", "opaque", "access token `format`: opaque or jwt (jwt signs with an ES256 key generated at start)")
	fs.StringVar(&cfg.store, "store", "memory", "`kind` of store: memory, redis or postgres")
	fs.StringVar(&cfg.redisURL, "redis-url", "", "Redis `URL` for -store redis, such as redis://127.0.0.1:6379/0")
	fs.BoolVar(&cfg.redisCluster, "redis-cluster", false, "with -store redis: -redis-url names a Redis Cluster, in the form redis://host:port?addr=host:port&addr=host:port (one node, the others as addr parameters)")
	fs.IntVar(&cfg.redisReplicas, "redis-replicas", 0, "with -store redis: the `replicas` that must acknowledge each replay entry, code consumption, refresh rotation and revocation before it counts (Redis WAIT; redisstore.Options.Replicas), so that a failover loses none; a write they do not acknowledge within 100ms is refused (503). 0: no waiting, and a failover may lose the last writes")
	fs.StringVar(&cfg.postgresURL, "postgres-url", "", "PostgreSQL `URL` for -store postgres, such as postgres://postgres@127.0.0.1:5432/test?sslmode=disable (a pool of 16 connections unless it sets pool_max_conns; other parameters, such as synchronous_commit=off, go to every connection)")
	fs.StringVar(&cfg.namespace, "store-namespace", "", "`name` keeping this demo's records apart in a shared store: the Redis key prefix name: or the PostgreSQL schema name (default the store's own, dpop: or dpop); demos of different -issuer need different ones, since the demo clients' resources name the issuer")
	fs.IntVar(&cfg.replayCap, "replay-capacity", 0, "`entries` of the memory store's proof replay cache and access tokens (default 100000: about 1,400 proofs a second; a full replay cache refuses requests with 503)")
	fs.IntVar(&cfg.quotaClient, "quota-client", 0, "replay cache `entries` the proofs of one client may keep alive, at the token endpoint and at each API (0: the kit's default, a tenth of the memory store's replay cache, 10000 with redis or postgres; -1: off)")
	fs.IntVar(&cfg.quotaToken, "quota-token", 0, "replay cache `entries` the proofs of one grant (or, when the validator does not know it, one access token) may keep alive at each API (0: the kit's default, a twentieth of the memory store's replay cache, 5000 with redis or postgres; -1: off)")
	fs.IntVar(&cfg.quotaGrant, "quota-grant", 0, "replay cache `entries` the proofs redeeming one grant (a code, a refresh token chain) may keep alive at the token endpoint (0: the kit's default, 100; -1: off)")
	fs.StringVar(&cfg.nonceSecret, "nonce-secret", "", "`secret` (at least 32 bytes) keying the server nonces, the same on every instance; default $"+nonceSecretEnv+", or random per process")
	fs.Var(&cfg.jwtClients, "jwt-client", "register `ID=FILE`, a confidential client authenticated by private_key_jwt (RFC 7523) with the public JWK Set in FILE: redirect URI "+redirectURI+", scopes read write, grants authorization_code, refresh_token and client_credentials, DPoP-bound, tokens for both APIs (repeatable)")
	fs.StringVar(&cfg.profile, "profile", "", "security `profile`: fapi2 runs the authorization server under the FAPI 2.0 Security Profile (handlers.ProfileFAPI2: pushed authorization requests and PKCE required, private_key_jwt only, PS256/ES256/EdDSA, 303 redirects); the demo's secret and public clients (demo, demo-public, demo-rs) are then not registered, so only -jwt-client clients can get tokens")
	fs.Usage = func() {
		fmt.Fprintf(errOut, "Usage: go run ./examples/server [flags]\n\n")
		fmt.Fprintf(errOut, "The dpopkit demo: an authorization server and a DPoP-protected API in one process.\n\n")
		fs.PrintDefaults()
		fmt.Fprint(errOut, quotaUsage)
		fmt.Fprintf(errOut, "\nEnvironment:\n  %s\n    \tthe nonce secret, when -nonce-secret is not given (preferred: a flag shows in the process list)\n", nonceSecretEnv)
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, q := range []struct {
		name string
		v    int
	}{{"-quota-client", cfg.quotaClient}, {"-quota-token", cfg.quotaToken}, {"-quota-grant", cfg.quotaGrant}} {
		if q.v < -1 || q.v > maxQuota {
			return config{}, fmt.Errorf("%s must be -1 (off), 0 (the default) or a number of entries up to %d, not %d", q.name, maxQuota, q.v)
		}
	}
	switch cfg.tokenFormat {
	case "opaque", "jwt":
	default:
		return config{}, fmt.Errorf("-token-format must be opaque or jwt, not %q", cfg.tokenFormat)
	}
	switch cfg.store {
	case "memory", "redis", "postgres":
	default:
		return config{}, fmt.Errorf("-store must be memory, redis or postgres, not %q", cfg.store)
	}
	if cfg.store == "redis" && cfg.redisURL == "" {
		return config{}, errors.New("-store redis needs -redis-url")
	}
	if cfg.store == "postgres" && cfg.postgresURL == "" {
		return config{}, errors.New("-store postgres needs -postgres-url")
	}
	if cfg.redisCluster && cfg.store != "redis" {
		return config{}, fmt.Errorf("-redis-cluster is for -store redis, not -store %s", cfg.store)
	}
	if cfg.redisReplicas != 0 && cfg.store != "redis" {
		return config{}, fmt.Errorf("-redis-replicas is for -store redis, not -store %s", cfg.store)
	}
	if cfg.redisReplicas < 0 {
		return config{}, errors.New("-redis-replicas must not be negative")
	}
	if cfg.namespace != "" {
		if cfg.store == "memory" {
			return config{}, errors.New("-store-namespace is for -store redis or postgres")
		}
		if !validNamespace(cfg.namespace) {
			return config{}, fmt.Errorf("-store-namespace must be 1 to 63 lower-case letters, digits and underscores, not starting with a digit, not %q", cfg.namespace)
		}
	}
	switch cfg.profile {
	case "", profileFAPI2:
	default:
		return config{}, fmt.Errorf("-profile must be %s (or not given), not %q", profileFAPI2, cfg.profile)
	}
	if cfg.nonceSecret == "" {
		cfg.nonceSecret = os.Getenv(nonceSecretEnv)
	}
	return cfg, nil
}

// validNamespace reports whether name is fit for both stores: a PostgreSQL
// schema pgstore accepts, and so a Redis prefix without the braces of hash
// tags.
func validNamespace(name string) bool {
	if name == "" || len(name) > 63 || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// quotaUsage explains the quota flags.
const quotaUsage = `
Proof quotas (-quota-client, -quota-token, -quota-grant):
  Every accepted proof takes an entry in the replay cache, shared by all
  clients (RFC 9449 §11.1). So that one party sending proofs as fast as it
  can fills its own share and not the cache every other party needs, each
  proof is charged to the client (an authenticated client at the token
  endpoint, the token's client at the API) and to the grant it redeems (a
  code or a refresh token chain, at the token endpoint) or the grant of the
  access token it is made with (at the API). A party over its quota is answered 429
  temporarily_unavailable with Retry-After, and its proof costs no shared
  state. A quota is a number of entries of the lifetime an entry has without
  nonces (71 s): a party may send about that many proofs at once, then that
  many every 71 s. With -require-nonce an entry lives as long as its nonce
  (2 to 4 minutes), so a party gets 2 to 3.5 times fewer proofs. The token
  endpoint and each API (/api, /billing) count their quotas separately, and
  each process its own.
`

// run serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, cfg config, out io.Writer, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	issuer := cfg.issuer
	if issuer == "" {
		issuer = defaultIssuer(cfg.addr, ln.Addr())
	}
	s, err := newSite(issuer)
	if err != nil {
		return err
	}

	app, err := newApp(ctx, cfg, s, logger)
	if err != nil {
		return err
	}
	defer app.close()

	srv := &http.Server{
		Handler:           logRequests(logger, app.handler),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	printBanner(out, cfg, s, ln.Addr().String(), app)

	return serve.Until(ctx, srv, ln, shutdownTimeout, logger)
}

// defaultIssuer is "http://" + the address, with the port actually bound
// (for -addr host:0) and a loopback host in place of an unspecified one
// (":8080", "0.0.0.0:8080"), since an issuer must name a host.
func defaultIssuer(addr string, bound net.Addr) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = ""
	}
	_, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// printBanner tells the user where the server is and how to try it.
func printBanner(out io.Writer, cfg config, s site, bound string, a *app) {
	nonces := "off"
	if cfg.requireNonce {
		nonces = "required"
	}
	issuer, api, billing := s.issuer, s.resource(apiPrefix), s.resource(billingPrefix)
	tokenURL, defaults := s.origin+a.paths.Token, a.defaults
	fmt.Fprintf(out, "dpopkit demo listening on %s\n", issuer)
	fmt.Fprintf(out, "  bound to %s; access tokens %s; store %s; server nonces %s\n", bound, cfg.tokenFormat, cfg.store, nonces)
	fmt.Fprintf(out, "  proof quotas (replay entries): per client %s, per grant or access token at each API %s, per grant at the token endpoint %s\n",
		quotaText(cfg.quotaClient, defaults.PerClient), quotaText(cfg.quotaToken, defaults.PerGrant), quotaText(cfg.quotaGrant, dpop.DefaultGrantQuota))
	fmt.Fprintf(out, "  metadata: %s%s; tokens carry the claim %s=%q\n", s.origin, a.paths.Metadata, tenantClaim, s.tenant())
	fmt.Fprintf(out, "  operations, at the root of the address (not under the issuer's path): %s%s (Prometheus metrics), %s%s (up: 200), %s%s (store reachable: 200, else 503)\n",
		s.origin, metricsPath, s.origin, healthPath, s.origin, readyPath)
	fmt.Fprintf(out, "APIs (GET with Authorization: DPoP <token>; a token is accepted where its audience names the resource):\n")
	fmt.Fprintf(out, "  %s/hello (resource %s)\n", api, api)
	fmt.Fprintf(out, "  %s/hello (resource %s)\n", billing, billing)
	fapi2 := cfg.profile == profileFAPI2
	if fapi2 {
		fmt.Fprintf(out, "profile fapi2 (FAPI 2.0 Security Profile): pushed authorization requests at %s and PKCE S256 required, private_key_jwt only (aud = the issuer), PS256/ES256/EdDSA, 303 redirects\n", s.origin+a.paths.PushedAuthorization)
		fmt.Fprintf(out, "  the demo's clients %s, %s and %s are not registered: the profile refuses secrets and public clients\n", demoClient, publicClient, rsClient)
	}
	fmt.Fprintf(out, "clients (redirect URI %s):\n", redirectURI)
	if !fapi2 {
		fmt.Fprintf(out, "  %-12s %-22s DPoP-bound; client_credentials, authorization_code, refresh_token; scopes read write; resources /api, /billing (both without a resource parameter)\n", demoClient, "secret "+demoSecret)
		fmt.Fprintf(out, "  %-12s %-22s DPoP-bound; authorization_code (PKCE required), refresh_token; scopes read write; resource /api\n", publicClient, "public, no secret")
		fmt.Fprintf(out, "  %-12s %-22s the /api resource server: introspection of the tokens for /api, no token of its own\n", rsClient, "secret "+rsSecret)
	}
	for _, c := range cfg.jwtClients {
		fmt.Fprintf(out, "  %-12s %-22s DPoP-bound; authorization_code, refresh_token, client_credentials; scopes read write; resources /api, /billing\n", c.id, "private_key_jwt")
	}
	if fapi2 && len(cfg.jwtClients) == 0 {
		fmt.Fprintf(out, "  none: no client can get a token; register one with -jwt-client ID=FILE (FILE: a public JWK Set, such as the output of go run ./examples/client -client-key KEY.pem -kid K -jwks)\n")
	}
	fmt.Fprintf(out, "end user at %s: %s / %s (HTTP Basic)\n", s.origin+a.paths.Authorize, demoUser, demoPassword)
	if fapi2 {
		id := "ID"
		if len(cfg.jwtClients) > 0 {
			id = cfg.jwtClients[0].id
		}
		fmt.Fprintf(out, "try: go run ./examples/client -issuer %s -mode fapi -client-id %s -client-key KEY.pem [-kid K]\n", issuer, id)
		return
	}
	fmt.Fprintf(out, "try: curl -s -u %s:%s -H \"DPoP: $(go run ./examples/proof -method POST -url %s)\" -d grant_type=client_credentials -d resource=%s %s\n",
		demoClient, demoSecret, tokenURL, api, tokenURL)
	fmt.Fprintf(out, " or: go run ./examples/client -issuer %s\n", issuer)
}

// quotaText describes a quota flag's value; def is the default's.
func quotaText(v, def int) string {
	switch {
	case v < 0:
		return "off"
	case v == 0:
		return fmt.Sprintf("%d (default)", def)
	}
	return fmt.Sprint(v)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// logRequests writes one log record per request. It logs the path only:
// queries of the authorization endpoint and bodies of the token endpoint
// carry codes, secrets and tokens that do not belong in logs.
func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Int("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr),
		)
	})
}
