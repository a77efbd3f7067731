package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dpopkit/dpop"
)

// Targets.
const (
	targetToken = "token" // POST /oauth2/token, client credentials
	targetAPI   = "api"   // GET /api/hello with a DPoP-bound token
)

const (
	tokenPath = "/oauth2/token"
	apiPath   = "/api/hello"
)

// Proof counts when -n is not given.
const (
	// defaultProofs is used when the rate cannot be estimated (no warm-up,
	// or no -d).
	defaultProofs = 100_000
	// maxAutoProofs caps the estimate: about 600 bytes a proof.
	maxAutoProofs = 2_000_000
	// autoMargin is how many times the warm-up rate × -d is signed.
	autoMargin = 1.5
	// warmupRate is how many proofs a second of warm-up is given; each
	// half of the warm-up ends early when they run out.
	warmupRate = 8000
)

// maxFailureSamples is how many distinct failure bodies a run keeps.
const maxFailureSamples = 5

// loadOptions describes one load run against one server.
type loadOptions struct {
	URL      string        // base URL the requests go to
	Issuer   string        // base URL the proofs name as htu; default URL
	Target   string        // targetToken or targetAPI
	Conns    int           // concurrent connections
	Proofs   int           // proofs for the measured phase; 0 = estimate
	Duration time.Duration // measured phase; 0 = until the proofs run out
	Warmup   time.Duration // unmeasured phase before it
	Timeout  time.Duration // per request
	// Rate, when positive, paces the requests at that many a second in
	// total (request i is not sent before start + i/Rate).
	Rate float64
	// IATAhead dates the measured proofs ahead of the clock (negative:
	// automatic, see autoIATAhead).
	IATAhead     time.Duration
	ClientID     string
	ClientSecret string
	Progress     io.Writer // notes on what is happening; nil discards
	// OnMeasure, when set, is called just before the measured phase
	// starts (true) and just after it ends (false).
	OnMeasure func(start bool)
}

// failure is one distinct refusal (status and body) and how often it came.
type failure struct {
	Status int    `json:"status"` // 0: no HTTP response
	Count  int    `json:"count"`
	Body   string `json:"body"`
}

// result is what one measured phase gives.
type result struct {
	Server         string      `json:"server,omitempty"`
	Target         string      `json:"target"`
	URL            string      `json:"url"`
	Conns          int         `json:"conns"`
	Nonce          bool        `json:"nonce"`
	Proofs         int         `json:"proofs"`
	SignSeconds    float64     `json:"sign_seconds"`
	Requests       int         `json:"requests"`
	OK             int         `json:"ok"`
	Failures       int         `json:"failures"`
	Seconds        float64     `json:"seconds"`
	RPS            float64     `json:"rps"`
	P50ms          float64     `json:"p50_ms"`
	P90ms          float64     `json:"p90_ms"`
	P99ms          float64     `json:"p99_ms"`
	MaxMs          float64     `json:"max_ms"`
	RanOut         bool        `json:"proofs_ran_out"`
	FailureSamples []failure   `json:"failure_samples,omitempty"`
	RSS            *rssSummary `json:"rss,omitempty"`
	// ServerCPU is the server process's CPU time (user + system) per
	// request in the measured phase, in microseconds, and ServerCores the
	// cores it kept busy on average; zero when the process is not known.
	ServerCPU   float64 `json:"server_cpu_us_per_request,omitempty"`
	ServerCores float64 `json:"server_cores,omitempty"`
	// ClientCores is what loadgen kept busy, MachineCores the whole
	// machine (Linux): the difference minus ServerCores is other processes.
	ClientCores  float64      `json:"client_cores,omitempty"`
	MachineCores float64      `json:"machine_cores,omitempty"`
	Notes        []string     `json:"notes,omitempty"`
	stats        *phaseResult `json:"-"`
}

// generator sends one kind of request with pre-signed proofs.
type generator struct {
	opts   loadOptions
	client *http.Client
	signer *dpop.Signer // for probes and warm-up
	key    *ecdsa.PrivateKey
	method string
	reqURL string // where requests go
	htu    string // what proofs name
	basic  string // Authorization header of token requests
	token  string // access token, for targetAPI
	nonce  string // server nonce the proofs carry, if the server wants one
	logf   func(format string, args ...any)
}

// runLoad prepares a generator, warms up, signs the measured proofs and
// measures.
func runLoad(ctx context.Context, opts loadOptions) (*result, error) {
	g, err := newGenerator(opts)
	if err != nil {
		return nil, err
	}
	defer g.client.CloseIdleConnections()
	if err := g.prepare(ctx); err != nil {
		return nil, err
	}

	res := &result{Target: opts.Target, URL: opts.URL, Conns: opts.Conns, Nonce: g.nonce != ""}

	// Warm-up: its own proofs, unmeasured, in two halves; the second
	// estimates the rate (the first pays for connections and cold caches).
	var warmRate float64
	if opts.Warmup > 0 {
		half := opts.Warmup / 2
		n := int(math.Min(math.Max(half.Seconds()*warmupRate, 100), 25_000))
		g.logf("warming up %s for %s (2 × %d proofs)", opts.URL, opts.Warmup, n)
		for i := range 2 {
			proofs, _, err := g.presign(ctx, g.signer, n)
			if err != nil {
				return nil, err
			}
			w := g.phase(ctx, proofs, time.Now().Add(half))
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if w.failures > 0 {
				g.logf("warm-up: %d of %d requests failed", w.failures, w.requests)
			}
			if i == 1 && w.ok > 0 && w.elapsed > 0 {
				warmRate = float64(w.ok) / w.elapsed.Seconds()
			}
		}
	}

	n := opts.Proofs
	if n <= 0 {
		switch {
		case warmRate > 0 && opts.Duration > 0:
			n = int(warmRate*opts.Duration.Seconds()*autoMargin) + 4*opts.Conns
			n = min(n, maxAutoProofs)
		default:
			n = defaultProofs
		}
	}
	ahead := opts.IATAhead
	if ahead < 0 {
		ahead = autoIATAhead(opts.Duration)
	}
	signer := g.signer
	if ahead > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("proofs dated %s ahead (iat) so that they stay within the server's 60 s window until the end of the run", ahead))
		signer, err = dpop.NewSigner(g.key, dpop.SignerOptions{Now: func() time.Time { return time.Now().Add(ahead) }})
		if err != nil {
			return nil, err
		}
	}
	g.logf("signing %d proofs (ES256)…", n)
	proofs, signTime, err := g.presign(ctx, signer, n)
	if err != nil {
		return nil, err
	}
	g.logf("signed in %.2fs; measuring %s %s with %d connections", signTime.Seconds(), opts.Target, opts.URL, opts.Conns)
	if g.nonce == "" && max(signTime, opts.Duration)-ahead > 55*time.Second {
		res.Notes = append(res.Notes, fmt.Sprintf("signing took %.0fs and the run lasts %s: proofs signed first or used last may pass the server's 60 s window (stale iat); use a smaller -n or a shorter -d", signTime.Seconds(), opts.Duration))
	}

	if opts.OnMeasure != nil {
		opts.OnMeasure(true)
	}
	self0, selfErr0 := readCPU(os.Getpid())
	mach0, machErr0 := readMachineBusy()
	var deadline time.Time
	if opts.Duration > 0 {
		deadline = time.Now().Add(opts.Duration)
	}
	p := g.phase(ctx, proofs, deadline)
	self1, selfErr1 := readCPU(os.Getpid())
	mach1, machErr1 := readMachineBusy()
	if opts.OnMeasure != nil {
		opts.OnMeasure(false)
	}
	if secs := p.elapsed.Seconds(); secs > 0 && selfErr0 == nil && selfErr1 == nil && machErr0 == nil && machErr1 == nil {
		res.ClientCores = round3((self1 - self0).Seconds() / secs)
		res.MachineCores = round3((mach1 - mach0).Seconds() / secs)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Proofs = n
	res.SignSeconds = signTime.Seconds()
	res.fill(p)
	if p.ranOut && opts.Duration > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("the %d proofs ran out after %.1fs of the %s asked for; pass a larger -n", n, p.elapsed.Seconds(), opts.Duration))
	}
	return res, nil
}

// autoIATAhead is how far ahead measured proofs are dated for a run of d.
// A pre-signed proof is as old, when sent, as the run has lasted (plus the
// signing time), and servers accept a proof for 60 s after its iat and up
// to 10 s before it: a run longer than 45 s dates its proofs 9 s ahead.
func autoIATAhead(d time.Duration) time.Duration {
	if d > 45*time.Second {
		return 9 * time.Second
	}
	return 0
}

func newGenerator(opts loadOptions) (*generator, error) {
	if opts.Conns < 1 {
		return nil, errors.New("-c must be at least 1")
	}
	if opts.Duration <= 0 && opts.Proofs <= 0 {
		return nil, errors.New("give a duration (-d) or a proof count (-n)")
	}
	base := strings.TrimSuffix(opts.URL, "/")
	issuer := strings.TrimSuffix(opts.Issuer, "/")
	if issuer == "" {
		issuer = base
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) base URL", opts.URL)
	}
	g := &generator{opts: opts}
	switch opts.Target {
	case targetToken:
		g.method, g.reqURL, g.htu = http.MethodPost, base+tokenPath, issuer+tokenPath
	case targetAPI:
		g.method, g.reqURL, g.htu = http.MethodGet, base+apiPath, issuer+apiPath
	default:
		return nil, fmt.Errorf("unknown target %q (token or api)", opts.Target)
	}
	g.basic = basicAuth(opts.ClientID, opts.ClientSecret)
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	g.logf = func(format string, args ...any) { fmt.Fprintf(progress, "loadgen: "+format+"\n", args...) }

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	g.key = key
	if g.signer, err = dpop.NewSigner(key, dpop.SignerOptions{}); err != nil {
		return nil, err
	}
	g.client = newHTTPClient(opts.Conns, opts.Timeout)
	return g, nil
}

// newHTTPClient returns a client that keeps up to conns connections to a
// server open, times requests out after timeout (default 10s) and does not
// follow redirects.
func newHTTPClient(conns int, timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// basicAuth is the Authorization header of client_secret_basic (RFC 6749
// §2.3.1: id and secret form-encoded first).
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// reply is one response, its body cut to a few hundred bytes.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// request is one request of a DPoP client: where it goes, what its proof
// names, and its credentials.
type request struct {
	method string
	url    string // where the request goes
	htu    string // what its proof names
	form   string // body of a POST, application/x-www-form-urlencoded
	auth   string // Authorization header, if any
	token  string // access token the proof is bound to (ath), if any
	// keepBody keeps the body of a 200 too (that of a refusal is always
	// kept).
	keepBody bool
}

// send sends rq with proof in its DPoP header (none when proof is empty).
func (rq request) send(ctx context.Context, hc *http.Client, proof string) (reply, error) {
	var body io.Reader
	if rq.method == http.MethodPost {
		body = strings.NewReader(rq.form)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, rq.url, body)
	if err != nil {
		return reply{}, err
	}
	if rq.method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if rq.auth != "" {
		req.Header.Set("Authorization", rq.auth)
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, header: resp.Header}
	if rq.keepBody || resp.StatusCode != http.StatusOK {
		r.body, _ = io.ReadAll(io.LimitReader(resp.Body, 2048))
	}
	io.Copy(io.Discard, resp.Body) // the rest, so the connection is reused
	return r, nil
}

// call sends rq with a fresh proof by s that carries nonce, if any. When the
// server answers use_dpop_nonce (RFC 9449 §8, §9) it sends rq once more with
// the nonce offered. It returns the last answer, whether it retried, and the
// nonce for the next request: the latest DPoP-Nonce the server sent once a
// nonce is in use.
func (rq request) call(ctx context.Context, hc *http.Client, s *dpop.Signer, nonce string) (r reply, next string, retried bool, err error) {
	for attempt := 0; ; attempt++ {
		proof, err := s.Proof(rq.method, rq.htu, dpop.ProofOptions{AccessToken: rq.token, Nonce: nonce})
		if err != nil {
			return reply{}, nonce, retried, err
		}
		r, err = rq.send(ctx, hc, proof)
		if err != nil {
			return reply{}, nonce, retried, err
		}
		if n, ok := wantsNonce(r); ok && attempt == 0 {
			nonce, retried = n, true
			continue
		}
		if n := r.header.Get("DPoP-Nonce"); n != "" && nonce != "" {
			nonce = n
		}
		return r, nonce, retried, nil
	}
}

// send makes one request of the generator's kind (or a token request, for
// the probes) with the given proof.
func (g *generator) send(ctx context.Context, method, target, proof, token string, keepBody bool) (reply, error) {
	rq := request{method: method, url: target, token: token, keepBody: keepBody}
	if method == http.MethodPost {
		rq.form, rq.auth = "grant_type=client_credentials", g.basic
	} else {
		rq.auth = "DPoP " + token
	}
	return rq.send(ctx, g.client, proof)
}

// wantsNonce reports whether a refusal is a use_dpop_nonce challenge, and
// the nonce it carries.
func wantsNonce(r reply) (string, bool) {
	nonce := r.header.Get("DPoP-Nonce")
	if nonce == "" || (r.status != http.StatusBadRequest && r.status != http.StatusUnauthorized) {
		return "", false
	}
	if strings.Contains(string(r.body), "use_dpop_nonce") || strings.Contains(r.header.Get("WWW-Authenticate"), "use_dpop_nonce") {
		return nonce, true
	}
	return "", false
}

// prepare checks that the server answers a first request, learns whether it
// wants server nonces, and for targetAPI gets the access token.
func (g *generator) prepare(ctx context.Context) error {
	base := strings.TrimSuffix(g.opts.URL, "/")
	issuer := strings.TrimSuffix(g.opts.Issuer, "/")
	if issuer == "" {
		issuer = base
	}
	// The token endpoint, with a nonce if it asks for one.
	tokenReq := request{method: http.MethodPost, url: base + tokenPath, htu: issuer + tokenPath,
		form: "grant_type=client_credentials", auth: g.basic, keepBody: true}
	tokenReply, tokenNonce, _, err := tokenReq.call(ctx, g.client, g.signer, "")
	if err != nil {
		return fmt.Errorf("first token request: %w", err)
	}
	if tokenReply.status != http.StatusOK {
		return fmt.Errorf("first token request to %s refused: %d %s", tokenReq.url, tokenReply.status, strings.TrimSpace(string(tokenReply.body)))
	}
	if g.opts.Target == targetToken {
		g.nonce = tokenNonce
		if g.nonce != "" {
			g.logf("the token endpoint requires server nonces: every proof carries the one it gave (nonces expire, keep the run under 5 minutes)")
		}
		return nil
	}

	tr, err := parseTokenReply(tokenReply)
	if err != nil {
		return err
	}
	g.token = tr.AccessToken
	apiReq := request{method: http.MethodGet, url: g.reqURL, htu: g.htu, auth: "DPoP " + g.token, token: g.token}
	r, apiNonce, _, err := apiReq.call(ctx, g.client, g.signer, "")
	if err != nil {
		return fmt.Errorf("first API request: %w", err)
	}
	if r.status != http.StatusOK {
		return fmt.Errorf("first API request to %s refused: %d %s %s", g.reqURL, r.status, r.header.Get("WWW-Authenticate"), strings.TrimSpace(string(r.body)))
	}
	g.nonce = apiNonce
	if g.nonce != "" {
		g.logf("the API requires server nonces: every proof carries the one it gave (nonces expire, keep the run under 5 minutes)")
	}
	return nil
}

// tokenResponse is what loadgen reads of a successful token response.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
}

// parseTokenReply reads a token response, which must hold a DPoP access
// token.
func parseTokenReply(r reply) (tokenResponse, error) {
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil || tr.AccessToken == "" {
		return tr, fmt.Errorf("token response without an access token: %s", r.body)
	}
	if !strings.EqualFold(tr.TokenType, "DPoP") {
		return tr, fmt.Errorf("token type %q, want DPoP", tr.TokenType)
	}
	return tr, nil
}

// presign makes n proofs for the generator's request, on every core.
func (g *generator) presign(ctx context.Context, s *dpop.Signer, n int) ([]string, time.Duration, error) {
	start := time.Now()
	opts := dpop.ProofOptions{Nonce: g.nonce}
	if g.opts.Target == targetAPI {
		opts.AccessToken = g.token
	}
	proofs := make([]string, n)
	workers := min(runtime.GOMAXPROCS(0), max(n, 1))
	var (
		wg       sync.WaitGroup
		firstErr error
		errOnce  sync.Once
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k, i := 0, w; i < n; k, i = k+1, i+workers {
				if k%512 == 0 && ctx.Err() != nil {
					errOnce.Do(func() { firstErr = ctx.Err() })
					return
				}
				p, err := s.Proof(g.method, g.htu, opts)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				proofs[i] = p
			}
		}()
	}
	wg.Wait()
	return proofs, time.Since(start), firstErr
}

// phaseResult is what the workers of one phase saw.
type phaseResult struct {
	latencies []time.Duration // sorted
	requests  int
	ok        int
	failures  int
	samples   []failure
	elapsed   time.Duration
	ranOut    bool
}

// workerStats is one worker's share, merged at the end.
type workerStats struct {
	lat      []time.Duration
	ok       int
	failures int
	samples  []failure
	ranOut   bool
}

// note records a failure, keeping the first few distinct ones.
func (ws *workerStats) note(status int, body string) {
	ws.failures++
	ws.samples = addFailure(ws.samples, failure{Status: status, Count: 1, Body: body})
}

// addFailure counts f among the distinct failures kept in samples (at most
// maxFailureSamples of them).
func addFailure(samples []failure, f failure) []failure {
	for i := range samples {
		if samples[i].Status == f.Status && samples[i].Body == f.Body {
			samples[i].Count += f.Count
			return samples
		}
	}
	if len(samples) < maxFailureSamples {
		samples = append(samples, f)
	}
	return samples
}

// phase drives the server with opts.Conns workers until the proofs run out,
// the deadline passes (when not zero) or ctx is done. Each proof is used
// once.
func (g *generator) phase(ctx context.Context, proofs []string, deadline time.Time) phaseResult {
	var next atomic.Int64
	stats := make([]workerStats, g.opts.Conns)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range stats {
		ws := &stats[w]
		ws.lat = make([]time.Duration, 0, len(proofs)/len(stats)+16)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if !deadline.IsZero() && !time.Now().Before(deadline) {
					return
				}
				i := next.Add(1) - 1
				if i >= int64(len(proofs)) {
					ws.ranOut = true
					return
				}
				if g.opts.Rate > 0 {
					at := start.Add(time.Duration(float64(i) / g.opts.Rate * float64(time.Second)))
					if !deadline.IsZero() && !at.Before(deadline) {
						return
					}
					if d := time.Until(at); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
					}
				}
				t0 := time.Now()
				r, err := g.send(ctx, g.method, g.reqURL, proofs[i], g.token, false)
				if ctx.Err() != nil {
					return // cancelled: not a measurement
				}
				ws.lat = append(ws.lat, time.Since(t0))
				switch {
				case err != nil:
					ws.note(0, err.Error())
				case r.status != http.StatusOK:
					ws.note(r.status, strings.TrimSpace(string(r.body)))
				default:
					ws.ok++
				}
			}
		}()
	}
	wg.Wait()
	p := phaseResult{elapsed: time.Since(start)}
	n := 0
	for i := range stats {
		n += len(stats[i].lat)
	}
	p.latencies = make([]time.Duration, 0, n)
	for i := range stats {
		ws := &stats[i]
		p.latencies = append(p.latencies, ws.lat...)
		p.ok += ws.ok
		p.failures += ws.failures
		p.ranOut = p.ranOut || ws.ranOut
		for _, f := range ws.samples {
			p.samples = addFailure(p.samples, f)
		}
	}
	p.requests = len(p.latencies)
	slices.Sort(p.latencies)
	return p
}

// percentile is the nearest-rank q-quantile (0 < q <= 1) of sorted values.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// fill copies a phase's figures into r.
func (r *result) fill(p phaseResult) {
	r.stats = &p
	r.Requests, r.OK, r.Failures = p.requests, p.ok, p.failures
	r.Seconds = math.Round(p.elapsed.Seconds()*1000) / 1000
	if p.elapsed > 0 {
		r.RPS = math.Round(float64(p.requests)/p.elapsed.Seconds()*10) / 10
	}
	r.P50ms = ms(percentile(p.latencies, 0.50))
	r.P90ms = ms(percentile(p.latencies, 0.90))
	r.P99ms = ms(percentile(p.latencies, 0.99))
	if len(p.latencies) > 0 {
		r.MaxMs = ms(p.latencies[len(p.latencies)-1])
	}
	r.RanOut = p.ranOut
	r.FailureSamples = p.samples
}

// printResult writes a result for people.
func printResult(w io.Writer, r *result) {
	nonce := "no"
	if r.Nonce {
		nonce = "yes"
	}
	name := r.URL
	if r.Server != "" {
		name = r.Server + " " + r.URL
	}
	fmt.Fprintf(w, "%s %s: %d connections, %d pre-signed proofs (signed in %.1fs), server nonce: %s\n",
		r.Target, name, r.Conns, r.Proofs, r.SignSeconds, nonce)
	fmt.Fprintf(w, "  %d requests in %.2fs: %.1f requests/s; %d ok, %d failures\n", r.Requests, r.Seconds, r.RPS, r.OK, r.Failures)
	fmt.Fprintf(w, "  latency p50 %s  p90 %s  p99 %s  max %s\n", fmtMs(r.P50ms), fmtMs(r.P90ms), fmtMs(r.P99ms), fmtMs(r.MaxMs))
	if r.ServerCPU > 0 {
		fmt.Fprintf(w, "  server CPU: %.0fµs per request, %.2f cores busy\n", r.ServerCPU, r.ServerCores)
	}
	if r.MachineCores > 0 {
		fmt.Fprintf(w, "  cores busy: %.2f of %d on the machine, %.2f of them loadgen\n", r.MachineCores, runtime.NumCPU(), r.ClientCores)
	}
	if r.RSS != nil {
		fmt.Fprintf(w, "  server RSS: start %s, max %s, end %s (%d samples)\n", fmtKB(r.RSS.StartKB), fmtKB(r.RSS.MaxKB), fmtKB(r.RSS.EndKB), r.RSS.Samples)
	}
	printFailures(w, r)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func printFailures(w io.Writer, r *result) {
	printSamples(w, fmt.Sprintf("failures of %s %s", r.Server, r.Target), r.FailureSamples)
}

func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fms", v)
}
