package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Attack modes (-attack): an attacker at full speed beside a paced victim
// of another client, to check that one party cannot take what the others
// need (issue 11).
const (
	// attackAnonToken: anonymous token requests through the public
	// client, each with a made-up code and a fresh proof.
	attackAnonToken = "anon-token"
	// attackAPIFlood: the confidential client gets a token (client
	// credentials) and floods the API with it, a fresh proof with ath per
	// request.
	attackAPIFlood = "api-flood"
	// attackRefreshChain: one user of the public client rotates its
	// refresh token as fast as it can.
	attackRefreshChain = "refresh-chain"
	// attackCCFlood: the confidential client asks for client credentials
	// tokens as fast as it can.
	attackCCFlood = "cc-flood"
)

var attackModes = []string{attackAnonToken, attackAPIFlood, attackRefreshChain, attackCCFlood}

// Victims (-victim).
const (
	victimAuto   = "auto"   // the client the attacker is not
	victimDemo   = "demo"   // the confidential client: client credentials, then the API
	victimPublic = "public" // a user of the public client: code flow, then the API and refreshes
)

// attackOptions describes one attack run.
type attackOptions struct {
	URL, Issuer string
	Mode        string
	Victim      string // victimAuto, victimDemo or victimPublic
	Conns       int    // the attacker's connections (refresh-chain uses one)
	Duration    time.Duration
	// VictimRate paces the victim's requests (a second); 0: no victim.
	VictimRate float64
	// VictimTokenEvery is how often the victim goes back to the token
	// endpoint: a new client credentials token, or a refresh.
	VictimTokenEvery time.Duration
	// VictimDelay is how long after the attacker the victim starts
	// (negative: a tenth of Duration, at most 1s), so that its whole life,
	// first token included, is under attack.
	VictimDelay time.Duration
	Timeout     time.Duration // per request
	Cred        credentials
	Progress    io.Writer
}

// attackerClient is the client a mode attacks as.
func attackerClient(mode string) string {
	if mode == attackAnonToken || mode == attackRefreshChain {
		return victimPublic
	}
	return victimDemo
}

// victimKind resolves -victim.
func (o attackOptions) victimKind() string {
	if o.Victim != "" && o.Victim != victimAuto {
		return o.Victim
	}
	if attackerClient(o.Mode) == victimPublic {
		return victimDemo
	}
	return victimPublic
}

// attackResult is what one attack run gives.
type attackResult struct {
	Mode     string         `json:"mode"`
	URL      string         `json:"url"`
	Seconds  float64        `json:"seconds"`
	Nonce    bool           `json:"nonce"` // the server handed out nonces
	Attacker attackerResult `json:"attacker"`
	Victim   *victimResult  `json:"victim,omitempty"`
	Notes    []string       `json:"notes,omitempty"`
}

// attackerResult counts every request the attacker sent, by status (0: no
// answer).
type attackerResult struct {
	Client   string      `json:"client"`
	As       string      `json:"as"`
	Conns    int         `json:"conns"`
	Requests int         `json:"requests"`
	RPS      float64     `json:"rps"`
	Status   map[int]int `json:"status"`
	// Rotations is how many times refresh-chain rotated its refresh token.
	Rotations      int       `json:"rotations,omitempty"`
	FailureSamples []failure `json:"failure_samples,omitempty"`
}

// victimResult counts the victim's requests. A request is one logical
// request: its retry after a use_dpop_nonce challenge is part of it.
// Status keys are "<kind> <status>" (kinds authorize, token, api; status 0:
// no answer).
type victimResult struct {
	Client         string         `json:"client"`
	As             string         `json:"as"`
	Rate           float64        `json:"rate"`
	Requests       int            `json:"requests"`
	OK             int            `json:"ok"`
	SuccessRate    float64        `json:"success_rate_percent"`
	Status         map[string]int `json:"status"`
	NonceRetries   int            `json:"nonce_retries"`
	P50ms          float64        `json:"p50_ms"`
	P99ms          float64        `json:"p99_ms"`
	MaxMs          float64        `json:"max_ms"`
	FailureSamples []failure      `json:"failure_samples,omitempty"`
}

// runAttack runs the attacker for Duration and, beside it, the victim.
func runAttack(ctx context.Context, o attackOptions) (*attackResult, error) {
	if !slices.Contains(attackModes, o.Mode) {
		return nil, fmt.Errorf("unknown attack %q (%s)", o.Mode, strings.Join(attackModes, ", "))
	}
	switch o.Victim {
	case "", victimAuto, victimDemo, victimPublic:
	default:
		return nil, fmt.Errorf("unknown victim %q (auto, demo or public)", o.Victim)
	}
	if o.Duration <= 0 || o.Conns < 1 || o.VictimRate < 0 {
		return nil, errors.New("an attack needs a duration, at least one connection and a victim rate of zero or more")
	}
	ep, err := newEndpoints(o.URL, o.Issuer)
	if err != nil {
		return nil, err
	}
	if o.VictimTokenEvery <= 0 {
		o.VictimTokenEvery = 2 * time.Second
	}
	if o.VictimDelay < 0 {
		o.VictimDelay = min(o.Duration/10, time.Second)
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	logf := func(format string, args ...any) { fmt.Fprintf(progress, "loadgen: "+format+"\n", args...) }

	a, err := newAttacker(ctx, o, ep)
	if err != nil {
		return nil, fmt.Errorf("attacker: %w", err)
	}
	defer a.hc.CloseIdleConnections()
	res := &attackResult{Mode: o.Mode, URL: o.URL}
	if o.Mode == attackRefreshChain && o.Conns > 1 {
		res.Notes = append(res.Notes, "refresh-chain uses one connection: a chain is sequential (two requests with one refresh token are a replay, which revokes the grant)")
	}

	var v *victim
	if o.VictimRate > 0 {
		v, err = newVictim(o, ep)
		if err != nil {
			return nil, err
		}
		defer v.p.hc.CloseIdleConnections()
		if v.kind == attackerClient(o.Mode) {
			res.Notes = append(res.Notes, "the victim is of the attacker's client: they share the client's quota")
		}
	}

	logf("attack %s on %s for %s: attacker %s, %d connections; victim %s", o.Mode, ep.base, o.Duration, a.as, a.conns, victimDescription(v))
	start := time.Now()
	deadline := start.Add(o.Duration)
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var wg sync.WaitGroup
	a.start(actx, &wg)
	if v != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(o.VictimDelay):
			case <-ctx.Done():
				return
			}
			v.run(ctx, deadline)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Seconds = round3(elapsed.Seconds())
	res.Attacker = a.result(elapsed)
	res.Nonce = a.sawNonce()
	if a.broken != "" {
		res.Notes = append(res.Notes, a.broken)
	}
	if v != nil {
		vr := v.result()
		res.Victim = &vr
		res.Nonce = res.Nonce || len(v.p.nonces) > 0
	}
	return res, nil
}

func victimDescription(v *victim) string {
	if v == nil {
		return "none"
	}
	return fmt.Sprintf("%s (%s) at %g requests/s", v.client, v.as, v.rate)
}

// attacker sends one kind of request as fast as the server answers.
type attacker struct {
	mode    string
	client  string // client id it acts as
	as      string // what it does, for people
	conns   int
	hc      *http.Client
	parties []*party // one per connection
	token   string   // api-flood: its access token
	refresh string   // refresh-chain: the current refresh token

	mu      sync.Mutex
	workers []*attackWorker
	broken  string // refresh-chain: why the chain ended early
}

// attackWorker is one connection's count.
type attackWorker struct {
	requests  int
	status    map[int]int
	samples   []failure
	rotations int
}

func (w *attackWorker) count(r reply, err error) {
	w.requests++
	if err != nil {
		w.status[0]++
		w.samples = addFailure(w.samples, failure{Status: 0, Count: 1, Body: err.Error()})
		return
	}
	w.status[r.status]++
	if r.status != http.StatusOK {
		w.samples = addFailure(w.samples, failure{Status: r.status, Count: 1, Body: strings.TrimSpace(string(r.body))})
	}
}

// newAttacker gets what the attacker needs before the clock starts: its
// access token (api-flood) or its refresh token (refresh-chain).
func newAttacker(ctx context.Context, o attackOptions, ep endpoints) (*attacker, error) {
	a := &attacker{mode: o.Mode, conns: o.Conns}
	if o.Mode == attackRefreshChain {
		a.conns = 1
	}
	a.hc = newHTTPClient(a.conns, o.Timeout)
	s, err := newSigner()
	if err != nil {
		return nil, err
	}
	first := newParty(ep, o.Cred, a.hc, s)
	switch o.Mode {
	case attackAnonToken:
		a.client, a.as = o.Cred.publicID, "anonymous: authorization_code with made-up codes, no user, no secret"
	case attackAPIFlood:
		a.client, a.as = o.Cred.clientID, "one client_credentials token, GET "+apiPath+" with a fresh proof (ath) per request"
		r, _, err := first.call(ctx, first.clientCredentials())
		if err != nil {
			return nil, err
		}
		tr, err := tokenOf("token request", r)
		if err != nil {
			return nil, err
		}
		a.token = tr.AccessToken
	case attackRefreshChain:
		a.client, a.as = o.Cred.publicID, "user "+o.Cred.user+", one refresh token chain (code flow with PKCE and dpop_jkt first)"
		tr, err := first.codeFlow(ctx)
		if err != nil {
			return nil, err
		}
		if tr.RefreshToken == "" {
			return nil, errors.New("the code exchange gave no refresh token")
		}
		a.refresh = tr.RefreshToken
	case attackCCFlood:
		a.client, a.as = o.Cred.clientID, "client_credentials token requests"
	}
	a.parties = []*party{first}
	for len(a.parties) < a.conns {
		// Each connection has a key of its own (api-flood: the token's).
		p := first.fork()
		if o.Mode != attackAPIFlood {
			if p.signer, err = newSigner(); err != nil {
				return nil, err
			}
		}
		p.nonces = maps.Clone(first.nonces)
		a.parties = append(a.parties, p)
	}
	return a, nil
}

// start runs the attacker's connections until ctx is done.
func (a *attacker) start(ctx context.Context, wg *sync.WaitGroup) {
	for _, p := range a.parties {
		w := &attackWorker{status: map[int]int{}}
		a.workers = append(a.workers, w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a.mode == attackRefreshChain {
				a.rotate(ctx, w, p)
				return
			}
			for ctx.Err() == nil {
				var rq request
				switch a.mode {
				case attackAnonToken:
					rq = p.tokenRequest(url.Values{
						"grant_type": {"authorization_code"}, "client_id": {p.cred.publicID}, "code": {randomString(32)},
						"redirect_uri": {p.cred.redirectURI}, "code_verifier": {randomString(32)},
					}, "")
				case attackAPIFlood:
					rq = p.api(a.token)
				case attackCCFlood:
					rq = p.clientCredentials()
				}
				rq.keepBody = false
				r, err := p.send(ctx, rq)
				if ctx.Err() != nil {
					return // stopped: not an answer
				}
				w.count(r, err)
			}
		}()
	}
}

// rotate is refresh-chain: one chain, each request with the latest refresh
// token, at once after any answer.
func (a *attacker) rotate(ctx context.Context, w *attackWorker, p *party) {
	for ctx.Err() == nil {
		r, err := p.send(ctx, p.refresh(a.refresh))
		if ctx.Err() != nil {
			return
		}
		w.count(r, err)
		switch {
		case err != nil:
			// The server may have rotated the token: the next use of the
			// old one would be a replay. Keep trying; the answer tells.
		case r.status == http.StatusOK:
			tr, err := parseTokenReply(r)
			if err != nil || tr.RefreshToken == "" {
				a.setBroken(fmt.Sprintf("refresh-chain: a rotation answered without a refresh token after %d rotations: %s", w.rotations, r.body))
				return
			}
			a.refresh = tr.RefreshToken
			w.rotations++
		case errorCode(r) == "invalid_grant":
			a.setBroken(fmt.Sprintf("refresh-chain: the chain ended after %d rotations: %d %s", w.rotations, r.status, strings.TrimSpace(string(r.body))))
			return
		}
	}
}

func (a *attacker) setBroken(s string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.broken = s
}

func (a *attacker) sawNonce() bool {
	for _, p := range a.parties {
		if len(p.nonces) > 0 {
			return true
		}
	}
	return false
}

func (a *attacker) result(elapsed time.Duration) attackerResult {
	r := attackerResult{Client: a.client, As: a.as, Conns: a.conns, Status: map[int]int{}}
	for _, w := range a.workers {
		r.Requests += w.requests
		r.Rotations += w.rotations
		for s, n := range w.status {
			r.Status[s] += n
		}
		for _, f := range w.samples {
			r.FailureSamples = addFailure(r.FailureSamples, f)
		}
	}
	if elapsed > 0 {
		r.RPS = math.Round(float64(r.Requests)/elapsed.Seconds()*10) / 10
	}
	return r
}

// victim is a well-behaved client of its own: one request at a time, never
// faster than its pace, a fresh proof per request, a use_dpop_nonce
// challenge answered by one retry with the nonce. The confidential client
// gets a client credentials token, then calls the API, with a new token
// every VictimTokenEvery; a user of the public client runs the code flow
// once (authorization, code exchange), then calls the API, refreshing every
// VictimTokenEvery.
type victim struct {
	kind, client, as string
	p                *party
	rate             float64
	every            time.Duration

	access, refresh string
	code            string
	pending         authorization
	tokenAt         time.Time // last visit to the token endpoint

	requests, ok, retries int
	status                map[string]int
	lat                   []time.Duration
	samples               []failure
}

func newVictim(o attackOptions, ep endpoints) (*victim, error) {
	s, err := newSigner()
	if err != nil {
		return nil, err
	}
	v := &victim{kind: o.victimKind(), p: newParty(ep, o.Cred, newHTTPClient(2, o.Timeout), s), rate: o.VictimRate, every: o.VictimTokenEvery, status: map[string]int{}}
	if v.kind == victimDemo {
		v.client, v.as = o.Cred.clientID, fmt.Sprintf("client_credentials every %s, GET %s between", o.VictimTokenEvery, apiPath)
	} else {
		v.client, v.as = o.Cred.publicID, fmt.Sprintf("user %s: code flow once, refresh every %s, GET %s between", o.Cred.user, o.VictimTokenEvery, apiPath)
	}
	return v, nil
}

// run sends the victim's requests at its pace until deadline. A request
// late on its slot is sent at once, but missed slots are not made up: the
// victim never goes faster than its pace.
func (v *victim) run(ctx context.Context, deadline time.Time) {
	interval := time.Duration(float64(time.Second) / v.rate)
	next := time.Now()
	for next.Before(deadline) {
		if d := time.Until(next); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return
			}
		}
		t0 := time.Now()
		kind, r, retried, ok, err := v.step(ctx)
		if ctx.Err() != nil {
			return
		}
		v.record(kind, r, retried, ok, err, time.Since(t0))
		next = next.Add(interval)
		if now := time.Now(); next.Before(now) {
			next = now
		}
	}
}

// step sends the victim's next request and tells whether it succeeded.
func (v *victim) step(ctx context.Context) (kind string, r reply, retried, ok bool, err error) {
	p := v.p
	due := time.Since(v.tokenAt) >= v.every
	switch {
	case v.kind == victimPublic && v.access == "" && v.code == "":
		rq, a := p.authorize()
		r, err = rq.send(ctx, p.hc, "")
		if err != nil {
			return "authorize", r, false, false, err
		}
		code, cerr := a.codeOf(r)
		if cerr != nil {
			return "authorize", r, false, false, nil
		}
		v.code, v.pending = code, a
		return "authorize", r, false, true, nil
	case v.kind == victimPublic && v.access == "":
		code := v.code
		v.code = "" // one try per code: a failed exchange starts over
		v.tokenAt = time.Now()
		r, retried, err = p.call(ctx, p.exchangeCode(code, v.pending.verifier))
		return "token", r, retried, err == nil && v.took(r), err
	case v.kind == victimDemo && (v.access == "" || due):
		v.tokenAt = time.Now()
		r, retried, err = p.call(ctx, p.clientCredentials())
		return "token", r, retried, err == nil && v.took(r), err
	case v.kind == victimPublic && due:
		v.tokenAt = time.Now()
		r, retried, err = p.call(ctx, p.refresh(v.refresh))
		if err == nil && errorCode(r) == "invalid_grant" {
			v.access, v.refresh = "", "" // the grant is gone: start over
		}
		return "token", r, retried, err == nil && v.took(r), err
	}
	r, retried, err = p.call(ctx, p.api(v.access))
	return "api", r, retried, err == nil && r.status == http.StatusOK, err
}

// took keeps the tokens of a successful token response.
func (v *victim) took(r reply) bool {
	tr, err := tokenOf("token", r)
	if err != nil {
		return false
	}
	if v.kind == victimPublic && tr.RefreshToken == "" {
		return false
	}
	v.access = tr.AccessToken
	if tr.RefreshToken != "" {
		v.refresh = tr.RefreshToken
	}
	return true
}

func (v *victim) record(kind string, r reply, retried, ok bool, err error, lat time.Duration) {
	v.requests++
	v.lat = append(v.lat, lat)
	if retried {
		v.retries++
	}
	status := r.status
	if err != nil {
		status = 0
	}
	v.status[fmt.Sprintf("%s %d", kind, status)]++
	switch {
	case ok:
		v.ok++
	case err != nil:
		v.samples = addFailure(v.samples, failure{Status: 0, Count: 1, Body: kind + ": " + err.Error()})
	default:
		v.samples = addFailure(v.samples, failure{Status: r.status, Count: 1, Body: kind + ": " + strings.TrimSpace(string(r.body))})
	}
}

func (v *victim) result() victimResult {
	lat := slices.Clone(v.lat)
	slices.Sort(lat)
	r := victimResult{
		Client: v.client, As: v.as, Rate: v.rate, Requests: v.requests, OK: v.ok, Status: v.status,
		NonceRetries: v.retries, FailureSamples: v.samples,
		P50ms: ms(percentile(lat, 0.50)), P99ms: ms(percentile(lat, 0.99)),
	}
	if len(lat) > 0 {
		r.MaxMs = ms(lat[len(lat)-1])
	}
	if v.requests > 0 {
		r.SuccessRate = math.Floor(float64(v.ok)/float64(v.requests)*1e4) / 100
	}
	return r
}

// printAttack writes an attack's result for people.
func printAttack(w io.Writer, r *attackResult) {
	nonce := "no"
	if r.Nonce {
		nonce = "yes"
	}
	fmt.Fprintf(w, "attack %s on %s: %.1fs, server nonces: %s\n", r.Mode, r.URL, r.Seconds, nonce)
	a := r.Attacker
	fmt.Fprintf(w, "  attacker %s (%s), %d connections: %d requests, %.0f/s; %s", a.Client, a.As, a.Conns, a.Requests, a.RPS, fmtStatus(a.Status))
	if r.Mode == attackRefreshChain {
		fmt.Fprintf(w, "; %d rotations", a.Rotations)
	}
	fmt.Fprintln(w)
	if v := r.Victim; v != nil {
		fmt.Fprintf(w, "  victim %s (%s), %g/s: %d requests, %d ok (%.2f%%); %s; p50 %s p99 %s max %s; %d nonce retries\n",
			v.Client, v.As, v.Rate, v.Requests, v.OK, v.SuccessRate, fmtStatus(v.Status), fmtMs(v.P50ms), fmtMs(v.P99ms), fmtMs(v.MaxMs), v.NonceRetries)
		printSamples(w, "failures of the victim", v.FailureSamples)
	}
	printSamples(w, "refusals of the attacker", a.FailureSamples)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// fmtStatus is "200 ×12, 429 ×3", in key order.
func fmtStatus[K int | string](m map[K]int) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%v ×%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "no answers"
	}
	return strings.Join(parts, ", ")
}

func printSamples(w io.Writer, what string, samples []failure) {
	if len(samples) == 0 {
		return
	}
	fmt.Fprintf(w, "  first distinct %s:\n", what)
	for _, f := range samples {
		status := fmt.Sprint(f.Status)
		if f.Status == 0 {
			status = "no response"
		}
		body := f.Body
		if len(body) > 300 {
			body = body[:300] + "…"
		}
		fmt.Fprintf(w, "    %s ×%d: %s\n", status, f.Count, body)
	}
}

// printAttackJSON writes the result as one JSON line.
func printAttackJSON(w io.Writer, r *attackResult) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
