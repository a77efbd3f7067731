// Command loadgen measures the throughput and latency of a DPoP server, and
// compares the dpopkit demo (examples/server) with a reference server that
// does only the work no DPoP server can avoid.
//
//	go run ./examples/loadgen -compare -spawn                 # the whole comparison
//	go run ./examples/loadgen -url http://127.0.0.1:8080 -target api -c 32 -d 20s
//	go run ./examples/loadgen -serve-reference -addr 127.0.0.1:9090
//	go run ./examples/loadgen -attack api-flood -url http://127.0.0.1:8080 -c 8 -d 15s
//
// Run it from inside the repository: -spawn builds examples/server with the
// go command. `go run ./examples/loadgen -h` lists every flag.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is what the command line selects.
type config struct {
	// load generator
	url, issuer, target        string
	conns, proofs              int
	duration, warmup, timeout  time.Duration
	iatAhead                   time.Duration
	rate                       float64
	clientID, clientSecret     string
	jsonOut                    bool
	targetSet                  bool
	serveReference             bool
	referenceReplay            bool
	addr                       string
	compare, spawn             bool
	kitURL, refURL             string
	kitPID                     int
	serverBin                  string
	store, redisURL, pgURL     string
	redisCluster               bool
	redisReplicas              int
	requireNonce               bool
	tokenFormat                string
	replayCap                  int
	rssInterval                time.Duration
	progressQuiet              bool
	passThrough, spawnSettings []string
	// attack mode
	attack, victim           string
	victimRate               float64
	victimTokenEvery         time.Duration
	publicID, user, password string
	redirectURI              string
}

const usageText = `Usage: go run ./examples/loadgen [flags]

Load generator for DPoP servers (RFC 9449), with a reference server and a
mode that compares the dpopkit demo with it.

Modes:
  (default)         drive one server at -url
  -serve-reference  serve the reference at -addr: POST /oauth2/token and
                    GET /api/hello doing only the unavoidable work (decode the
                    JWS, P-256 jwk to ecdsa.PublicKey, ES256 verification with
                    crypto/ecdsa, htm, htu, iat, ath); no client authentication,
                    no replay cache, no store; a fixed JSON answer
  -compare          run the same load against -ref-url, then -kit-url, and
                    print both with the ratio kit/reference
  -compare -spawn   build examples/server and start it and the reference on
                    free ports, run the targets (default token and api), print
                    the table with the kit server's RSS (start, max, end,
                    sampled every -rss-interval from /proc), and stop them; a
                    fresh kit server serves each target
  -attack MODE      attack the demo server at -url with -c connections at full
                    speed for -d, beside a paced victim of another client
                    (-victim-rate), and print what each of them got

Attacks (-attack), each a check of issue 11: one party must not take the
room every other party needs (the replay cache, the token tables):
  anon-token     anonymous token requests through the public client
                 (-public-client-id): authorization_code with a made-up code
                 and a fresh proof each, no user, no secret. The server must
                 refuse them (400) before they cost any shared state.
  api-flood      the confidential client (-client-id) gets one
                 client_credentials token and floods GET /api/hello with it,
                 a fresh proof with ath per request; its quota ends it (429).
  refresh-chain  one user of the public client (-user; code flow with PKCE
                 S256 and dpop_jkt) rotates its refresh token as fast as it
                 can, on one connection (a chain is sequential); the grant's
                 quota ends it (429). Prints the rotations done.
  cc-flood       the confidential client asks for client_credentials tokens
                 as fast as it can; its quota (429) and its share of the
                 token table end it.
  The victim (-victim auto) is the client the attacker is not: a user of the
  public client for api-flood and cc-flood (code flow once, then the API,
  with a refresh every -victim-token-every), the confidential client for
  anon-token and refresh-chain (a client_credentials token every
  -victim-token-every, the API between). It is well-behaved: one request at
  a time, never faster than -victim-rate, a fresh proof per request, and a
  use_dpop_nonce challenge answered by one retry with the nonce (not a
  failure). It starts a tenth of -d (at most 1s) after the attacker, so
  its first token is got under attack too. -victim demo or public picks it
  (the attacker's own client shows what its other users see); -victim-rate
  0 runs the attacker alone. Printed: the victim's requests, successes,
  success rate, statuses (per kind: authorize, token, api), p50/p99; the
  attacker's requests and statuses (429: over its quota; 400: refused; 503:
  a full store or replay cache).

Targets:
  token  POST /oauth2/token, client credentials (HTTP Basic -client-id /
         -client-secret), a fresh DPoP proof per request
  api    GET /api/hello with Authorization: DPoP <token>, one access token
         obtained first with the same key, a fresh proof with ath per request

How it measures:
  The proofs (ES256, one key) are signed before the clock starts, so the
  client's signing cost is not measured, and each is used once: the run stops
  at -d or when the proofs run out. Without -n, a warm-up (-warmup, with its
  own proofs) estimates the rate and 1.5× rate × -d proofs are signed. C
  workers share one http.Transport with C keep-alive connections. A failure is
  any answer but 200 (or no answer); the first few distinct ones are printed.
  Latency is measured per request, from sending to the end of the body.

  A pre-signed proof ages while the run goes on, and servers accept a proof
  for 60 s after its iat (10 s before it): runs with -d above 45s date their
  proofs 9 s ahead (see -iat-ahead). If the server answers use_dpop_nonce,
  loadgen takes the nonce it offers and signs every proof with it; server
  nonces expire (the demo's within 2 to 4 minutes), so keep warm-up, signing
  and -d well under 2 minutes.

  The load generator and the servers share the machine's cores: on a small
  machine the figures are a lower bound for both, and the ratio is the more
  telling number.

  The demo's memory store keeps a replay entry for 70 s per accepted proof,
  in a cache of 100,000 entries: about 1,400 proofs/s sustained. A faster
  run fills it, and the demo then refuses proofs (503 server_error) until
  entries expire: its designed bound, not a loadgen failure. To measure
  without reaching it, keep warm-up plus -n under about 95,000 proofs (for
  example -warmup 1s -n 80000 -d 0), or pace the load with -rate. With
  -require-nonce an entry lives as long as the nonce (up to 4 minutes), so
  the sustainable rate is lower still.

  The demo also charges every proof to per-party quotas (its -quota-client,
  -quota-token, -quota-grant): by default one client may keep a tenth of the
  replay cache, one grant (or access token) a twentieth, and beyond that it is answered
  429. A load generator is one client with one token, so it would measure
  the quota; -spawn starts the demo with quotas it cannot reach (the
  bookkeeping still runs). A demo started by hand for loadgen needs
  -quota-client -1 -quota-token -1, or large quotas. -attack wants them on.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line; usage and errors go to errOut.
func parseFlags(args []string, errOut io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&cfg.url, "url", "http://127.0.0.1:8080", "base `URL` of the server to drive")
	fs.StringVar(&cfg.issuer, "issuer", "", "public base `URL` the proofs name as htu (default -url; with -compare, the kit's)")
	fs.StringVar(&cfg.target, "target", "", "`targets`: token, api, or token,api (default token; with -compare, token,api)")
	fs.IntVar(&cfg.conns, "c", 8, "concurrent connections (`C`)")
	fs.IntVar(&cfg.proofs, "n", 0, "proofs to pre-sign for the measured phase (`N`); the run stops when they run out (default: estimated from the warm-up)")
	fs.DurationVar(&cfg.duration, "d", 10*time.Second, "`duration` of the measured phase; 0 runs until the -n proofs are used")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each run (`duration`, 0 for none)")
	fs.Float64Var(&cfg.rate, "rate", 0, "pace the requests at this many a `second` in total (0: as fast as the server answers); latency is then measured from each request's actual send")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "per-request `timeout`")
	fs.DurationVar(&cfg.iatAhead, "iat-ahead", -1, "date the measured proofs this `duration` ahead (below the server's leeway, 10s for dpopkit); negative: 9s when -d > 45s, else 0")
	fs.StringVar(&cfg.clientID, "client-id", demoCredentials.clientID, "client `id` for the token requests (with -attack: the confidential client)")
	fs.StringVar(&cfg.clientSecret, "client-secret", demoCredentials.clientSecret, "client `secret` for the token requests")
	fs.BoolVar(&cfg.jsonOut, "json", false, "also print one machine-readable JSON line per run (per target with -compare, per attack)")
	fs.BoolVar(&cfg.progressQuiet, "q", false, "do not print progress notes on standard error")

	fs.BoolVar(&cfg.serveReference, "serve-reference", false, "serve the reference server at -addr instead of generating load")
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:9090", "`address` of -serve-reference (the htu base is -issuer, default http://ADDR)")
	fs.BoolVar(&cfg.referenceReplay, "reference-replay", false, "the reference also records each proof's jti in the shared store of -store redis or postgres (-redis-url, -redis-cluster, -postgres-url): one SET NX or one INSERT per request, the round trip no shared replay cache avoids; with -serve-reference, or with -compare -spawn for the reference it starts")

	fs.BoolVar(&cfg.compare, "compare", false, "compare the kit (-kit-url) with the reference (-ref-url)")
	fs.StringVar(&cfg.kitURL, "kit-url", "http://127.0.0.1:8080", "base `URL` of the kit server for -compare")
	fs.StringVar(&cfg.refURL, "ref-url", "http://127.0.0.1:9090", "base `URL` of the reference server for -compare")
	fs.IntVar(&cfg.kitPID, "kit-pid", 0, "with -compare and -kit-url: `pid` of the kit server, to sample its RSS")
	fs.BoolVar(&cfg.spawn, "spawn", false, "with -compare: build and start examples/server and the reference on free ports")
	fs.StringVar(&cfg.serverBin, "server-bin", "", "with -spawn: a `binary` of examples/server to start instead of building one")
	fs.StringVar(&cfg.store, "store", "memory", "with -spawn: the demo's -store (`kind`: memory, redis, postgres)")
	fs.StringVar(&cfg.redisURL, "redis-url", "", "with -spawn: the demo's -redis-url (`URL`)")
	fs.BoolVar(&cfg.redisCluster, "redis-cluster", false, "with -spawn: the demo's -redis-cluster (-redis-url names a Redis Cluster)")
	fs.IntVar(&cfg.redisReplicas, "redis-replicas", 0, "with -spawn: the demo's -redis-replicas (`replicas` acknowledging each replay entry)")
	fs.StringVar(&cfg.pgURL, "postgres-url", "", "with -spawn: the demo's -postgres-url (`URL`)")
	fs.BoolVar(&cfg.requireNonce, "require-nonce", false, "with -spawn: start the demo with -require-nonce")
	fs.StringVar(&cfg.tokenFormat, "token-format", "opaque", "with -spawn: the demo's -token-format (`format`: opaque or jwt)")
	fs.IntVar(&cfg.replayCap, "replay-capacity", 0, "with -spawn: the demo's -replay-capacity (`entries`; 0 keeps its default)")
	fs.DurationVar(&cfg.rssInterval, "rss-interval", time.Second, "how often to sample a spawned server's RSS (`duration`)")

	fs.StringVar(&cfg.attack, "attack", "", "attack `mode`: "+strings.Join(attackModes, ", ")+" (see Attacks)")
	fs.StringVar(&cfg.victim, "victim", victimAuto, "with -attack: the victim (`who`): auto (the client the attacker is not), demo (the confidential client) or public (a user of the public client)")
	fs.Float64Var(&cfg.victimRate, "victim-rate", 20, "with -attack: the victim's pace, `requests` a second (0: no victim)")
	fs.DurationVar(&cfg.victimTokenEvery, "victim-token-every", 2*time.Second, "with -attack: how often the victim asks the token endpoint for a new token (`duration`)")
	fs.StringVar(&cfg.publicID, "public-client-id", demoCredentials.publicID, "with -attack: the public client's `id`")
	fs.StringVar(&cfg.user, "user", demoCredentials.user, "with -attack: the end `user` of the public client (HTTP Basic at the authorization endpoint)")
	fs.StringVar(&cfg.password, "password", demoCredentials.password, "with -attack: the end user's `password`")
	fs.StringVar(&cfg.redirectURI, "redirect-uri", demoCredentials.redirectURI, "with -attack: the public client's registered redirect `URI`")
	fs.Usage = func() {
		fmt.Fprint(errOut, usageText)
		fs.PrintDefaults()
		fmt.Fprint(errOut, `
Examples:
  go run ./examples/loadgen -compare -spawn -c 32 -d 20s
  go run ./examples/loadgen -compare -spawn -target token -d 60s     # memory growth: watch RSS max
  go run ./examples/loadgen -compare -spawn -target token -d 60s -rate 1200   # within the replay cache's rate
  go run ./examples/loadgen -compare -spawn -store redis -redis-url redis://127.0.0.1:6379/0
  go run ./examples/loadgen -serve-reference -addr 127.0.0.1:9090 &
  go run ./examples/loadgen -compare -kit-url http://127.0.0.1:8080 -ref-url http://127.0.0.1:9090 -target token
  go run ./examples/server &
  go run ./examples/loadgen -attack anon-token -c 8 -d 15s -victim-rate 20
`)
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "target":
			cfg.targetSet = true
		case "store", "redis-url", "redis-cluster", "postgres-url":
			// The reference's store with -serve-reference -reference-replay.
			if !cfg.serveReference || !cfg.referenceReplay {
				cfg.passThrough = append(cfg.passThrough, f.Name)
			}
		case "redis-replicas", "require-nonce", "token-format":
			cfg.passThrough = append(cfg.passThrough, f.Name)
		}
	})
	if cfg.conns < 1 {
		return config{}, errors.New("-c must be at least 1")
	}
	if cfg.rate < 0 {
		return config{}, errors.New("-rate must not be negative")
	}
	if cfg.duration <= 0 && cfg.proofs <= 0 {
		return config{}, errors.New("give -d or -n")
	}
	if cfg.spawn && !cfg.compare {
		return config{}, errors.New("-spawn goes with -compare")
	}
	if len(cfg.passThrough) > 0 && !cfg.spawn {
		return config{}, fmt.Errorf("-%s is passed to a server that -spawn starts; without -spawn, start the server with it yourself", cfg.passThrough[0])
	}
	if cfg.serveReference && cfg.compare {
		return config{}, errors.New("-serve-reference and -compare are separate modes")
	}
	if cfg.referenceReplay && !cfg.serveReference && !cfg.spawn {
		return config{}, errors.New("-reference-replay goes with -serve-reference or -compare -spawn")
	}
	if cfg.referenceReplay && cfg.store != "redis" && cfg.store != "postgres" {
		return config{}, fmt.Errorf("-reference-replay needs -store redis or postgres, not %q", cfg.store)
	}
	if cfg.attack != "" {
		switch {
		case cfg.compare || cfg.serveReference:
			return config{}, errors.New("-attack is a mode of its own: not with -compare or -serve-reference")
		case !slices.Contains(attackModes, cfg.attack):
			return config{}, fmt.Errorf("-attack must be one of %s, not %q", strings.Join(attackModes, ", "), cfg.attack)
		case cfg.victim != victimAuto && cfg.victim != victimDemo && cfg.victim != victimPublic:
			return config{}, fmt.Errorf("-victim must be auto, demo or public, not %q", cfg.victim)
		case cfg.victimRate < 0:
			return config{}, errors.New("-victim-rate must not be negative")
		case cfg.duration <= 0:
			return config{}, errors.New("-attack needs -d")
		case cfg.victimTokenEvery <= 0:
			return config{}, errors.New("-victim-token-every must be positive")
		}
	}
	return cfg, nil
}

// targets resolves -target.
func (cfg config) targets() ([]string, error) {
	t := cfg.target
	if !cfg.targetSet {
		t = targetToken
		if cfg.compare {
			t = targetToken + "," + targetAPI
		}
	}
	var out []string
	for _, s := range strings.Split(t, ",") {
		s = strings.TrimSpace(s)
		switch s {
		case targetToken, targetAPI:
			out = append(out, s)
		default:
			return nil, fmt.Errorf("-target: unknown target %q (token, api, or token,api)", s)
		}
	}
	return out, nil
}

// unreachableQuota is the largest quota examples/server accepts, in replay
// entries: more than a run can use.
const unreachableQuota = "100000000"

// serverArgs are the flags -spawn passes to examples/server.
func (cfg config) serverArgs() []string {
	args := []string{"-store", cfg.store, "-token-format", cfg.tokenFormat}
	// One load generator is one client with one token: quotas it cannot
	// reach, so that the run measures the checks (the quota bookkeeping
	// included) rather than the quota refusing.
	args = append(args, "-quota-client", unreachableQuota, "-quota-token", unreachableQuota)
	args = append(args, cfg.storeArgs()...)
	if cfg.redisReplicas != 0 {
		args = append(args, "-redis-replicas", strconv.Itoa(cfg.redisReplicas))
	}
	if cfg.requireNonce {
		args = append(args, "-require-nonce")
	}
	if cfg.replayCap > 0 {
		args = append(args, "-replay-capacity", strconv.Itoa(cfg.replayCap))
	}
	return args
}

// storeArgs are the flags naming the shared store, the same for the demo
// and, with -reference-replay, the reference.
func (cfg config) storeArgs() []string {
	var args []string
	if cfg.redisURL != "" {
		args = append(args, "-redis-url", cfg.redisURL)
	}
	if cfg.redisCluster {
		args = append(args, "-redis-cluster")
	}
	if cfg.pgURL != "" {
		args = append(args, "-postgres-url", cfg.pgURL)
	}
	return args
}

func (cfg config) loadOptions(progress io.Writer) loadOptions {
	return loadOptions{
		Conns:        cfg.conns,
		Proofs:       cfg.proofs,
		Duration:     cfg.duration,
		Warmup:       cfg.warmup,
		Timeout:      cfg.timeout,
		Rate:         cfg.rate,
		IATAhead:     cfg.iatAhead,
		ClientID:     cfg.clientID,
		ClientSecret: cfg.clientSecret,
		Progress:     progress,
	}
}

func (cfg config) attackOptions(progress io.Writer) attackOptions {
	return attackOptions{
		URL: cfg.url, Issuer: cfg.issuer, Mode: cfg.attack, Victim: cfg.victim,
		Conns: cfg.conns, Duration: cfg.duration, Timeout: cfg.timeout,
		VictimRate: cfg.victimRate, VictimTokenEvery: cfg.victimTokenEvery, VictimDelay: -1,
		Cred: credentials{
			clientID: cfg.clientID, clientSecret: cfg.clientSecret, publicID: cfg.publicID,
			user: cfg.user, password: cfg.password, redirectURI: cfg.redirectURI,
		},
		Progress: progress,
	}
}

// run is the command, with its output streams.
func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	cfg, err := parseFlags(args, errOut)
	if err != nil {
		return err
	}
	progress := errOut
	if cfg.progressQuiet {
		progress = io.Discard
	}
	if cfg.serveReference {
		var replay refReplay
		if cfg.referenceReplay {
			if replay, err = openRefReplay(ctx, cfg); err != nil {
				return err
			}
			defer replay.close()
		}
		return serveReference(ctx, cfg.addr, cfg.issuer, replay, out)
	}
	if cfg.attack != "" {
		r, err := runAttack(ctx, cfg.attackOptions(progress))
		if err != nil {
			return err
		}
		printAttack(out, r)
		if cfg.jsonOut {
			return printAttackJSON(out, r)
		}
		return nil
	}
	targets, err := cfg.targets()
	if err != nil {
		return err
	}
	lo := cfg.loadOptions(progress)

	if !cfg.compare {
		for _, t := range targets {
			o := lo
			o.URL, o.Issuer, o.Target = cfg.url, cfg.issuer, t
			r, err := runLoad(ctx, o)
			if err != nil {
				return err
			}
			printResult(out, r)
			if cfg.jsonOut {
				b, err := json.Marshal(r)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s\n", b)
			}
		}
		return nil
	}

	co := compareOptions{Targets: targets, Load: lo, RSSInterval: cfg.rssInterval, JSON: cfg.jsonOut}
	if !cfg.spawn {
		ref := fixed(endpoint{URL: cfg.refURL})
		kit := fixed(endpoint{URL: cfg.kitURL, Issuer: cfg.issuer, PID: cfg.kitPID})
		_, err := runCompare(ctx, co, ref, kit, out)
		return err
	}
	sp, err := newSpawner(ctx, cfg.serverBin, cfg.serverArgs(), cfg.refReplayArgs(), progress)
	if err != nil {
		return err
	}
	defer sp.cleanup()
	ref, stopRef, err := sp.reference(ctx)
	if err != nil {
		return err
	}
	defer stopRef()
	fmt.Fprintf(out, "kit: examples/server %s; %d connections, -d %s, warm-up %s; load generator and servers share this machine's %d cores\n",
		strings.Join(cfg.serverArgs(), " "), cfg.conns, cfg.duration, cfg.warmup, runtime.NumCPU())
	_, err = runCompare(ctx, co, ref, sp.kit(), out)
	return err
}
