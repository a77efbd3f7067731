package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Server names in a comparison.
const (
	serverRef = "reference"
	serverKit = "kit"
)

// endpoint is one server under test.
type endpoint struct {
	URL    string // where requests go
	Issuer string // what proofs name; default URL
	PID    int    // > 0: sample this process's RSS during the run
}

// provider hands out the server for one target and takes it back.
type provider func(ctx context.Context, target string) (endpoint, func(), error)

// fixed is a provider for a server that is already running.
func fixed(ep endpoint) provider {
	return func(context.Context, string) (endpoint, func(), error) { return ep, func() {}, nil }
}

// comparison is the pair of runs for one target.
type comparison struct {
	Target string  `json:"target"`
	Ref    *result `json:"reference"`
	Kit    *result `json:"kit"`
	// Kit over reference: throughput (below 1: the kit is slower) and p99
	// latency (above 1: the kit is slower).
	RPSRatio float64 `json:"rps_ratio_kit_over_reference"`
	P99Ratio float64 `json:"p99_ratio_kit_over_reference"`
	// CPURatio compares the servers' CPU time per request (above 1: the
	// kit does more work), when both processes are known.
	CPURatio float64 `json:"cpu_per_request_ratio_kit_over_reference,omitempty"`
}

// compareOptions configures runCompare.
type compareOptions struct {
	Targets     []string
	Load        loadOptions // URL, Issuer and Target are set per run
	RSSInterval time.Duration
	JSON        bool
}

// runCompare runs the same load against the reference, then the kit, for
// each target, and prints the table (and, with JSON, one line per target).
func runCompare(ctx context.Context, opts compareOptions, ref, kit provider, out io.Writer) ([]comparison, error) {
	var all []comparison
	for _, target := range opts.Targets {
		c := comparison{Target: target}
		for _, side := range []struct {
			name string
			get  provider
			dst  **result
		}{{serverRef, ref, &c.Ref}, {serverKit, kit, &c.Kit}} {
			ep, release, err := side.get(ctx, target)
			if err != nil {
				return all, fmt.Errorf("%s server: %w", side.name, err)
			}
			lo := opts.Load
			lo.URL, lo.Issuer, lo.Target = ep.URL, ep.Issuer, target
			var (
				stopRSS    func() *rssSummary
				cpu0, cpu1 time.Duration
				cpuErr     error
			)
			if ep.PID > 0 {
				stopRSS = sampleRSS(ep.PID, opts.RSSInterval)
				lo.OnMeasure = func(start bool) {
					d, err := readCPU(ep.PID)
					if start {
						cpu0 = d
					} else {
						cpu1 = d
					}
					cpuErr = errors.Join(cpuErr, err)
				}
			}
			r, err := runLoad(ctx, lo)
			if r != nil && ep.PID > 0 && cpuErr == nil && r.Requests > 0 && r.Seconds > 0 {
				busy := cpu1 - cpu0
				r.ServerCPU = math.Round(float64(busy.Microseconds())/float64(r.Requests)*10) / 10
				r.ServerCores = round3(busy.Seconds() / r.Seconds)
			}
			if stopRSS != nil {
				rss := stopRSS()
				if r != nil {
					r.RSS = rss
				}
			}
			release()
			if err != nil {
				return all, fmt.Errorf("%s %s: %w", side.name, target, err)
			}
			r.Server = side.name
			*side.dst = r
		}
		if c.Ref.RPS > 0 {
			c.RPSRatio = round3(c.Kit.RPS / c.Ref.RPS)
		}
		if c.Ref.P99ms > 0 {
			c.P99Ratio = round3(c.Kit.P99ms / c.Ref.P99ms)
		}
		if c.Ref.ServerCPU > 0 && c.Kit.ServerCPU > 0 {
			c.CPURatio = round3(c.Kit.ServerCPU / c.Ref.ServerCPU)
		}
		all = append(all, c)
	}
	printTable(out, all)
	if opts.JSON {
		for _, c := range all {
			b, err := json.Marshal(c)
			if err != nil {
				return all, err
			}
			fmt.Fprintf(out, "%s\n", b)
		}
	}
	return all, nil
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// printTable writes the comparison table, then the failures and notes.
func printTable(out io.Writer, all []comparison) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tserver\tconns\trequests\treq/s\tp50\tp90\tp99\tfailures\tserver CPU/req\tcores srv/gen/other\tRSS start/max/end\t")
	for _, c := range all {
		for _, r := range []*result{c.Ref, c.Kit} {
			rss, cpu := "-", "-"
			if r.RSS != nil {
				rss = fmt.Sprintf("%s/%s/%s", fmtKB(r.RSS.StartKB), fmtKB(r.RSS.MaxKB), fmtKB(r.RSS.EndKB))
			}
			cores := "-"
			if r.ServerCPU > 0 {
				cpu = fmt.Sprintf("%.0fµs", r.ServerCPU)
				if r.MachineCores > 0 {
					cores = fmt.Sprintf("%.2f/%.2f/%.2f", r.ServerCores, r.ClientCores, max(r.MachineCores-r.ServerCores-r.ClientCores, 0))
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n",
				c.Target, r.Server, r.Conns, r.Requests, r.RPS, fmtMs(r.P50ms), fmtMs(r.P90ms), fmtMs(r.P99ms), r.Failures, cpu, cores, rss)
		}
		cpu := ""
		if c.CPURatio > 0 {
			cpu = fmt.Sprintf("%.2f×", c.CPURatio)
		}
		fmt.Fprintf(tw, "%s\tkit/reference\t\t\t%.2f×\t\t\t%.2f×\t\t%s\t\t\t\n", c.Target, c.RPSRatio, c.P99Ratio, cpu)
	}
	tw.Flush()
	for _, c := range all {
		for _, r := range []*result{c.Ref, c.Kit} {
			printFailures(out, r)
			for _, n := range r.Notes {
				fmt.Fprintf(out, "  note (%s %s): %s\n", r.Server, r.Target, n)
			}
		}
	}
}

// rssSummary is the resident set size of a server over a run, in KiB.
type rssSummary struct {
	StartKB int64 `json:"start_kb"`
	MaxKB   int64 `json:"max_kb"`
	EndKB   int64 `json:"end_kb"`
	Samples int   `json:"samples"`
	// Trace is every sample, in order (MB, one decimal).
	Trace []float64 `json:"trace_mb"`
}

func fmtKB(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

// readRSS returns VmRSS of a process from /proc/<pid>/status (Linux), in KiB.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, errors.New("no VmRSS line")
}

// userHZ is the unit of utime and stime in /proc/<pid>/stat: USER_HZ, 100
// on every Linux architecture Go supports.
const userHZ = 100

// readCPU returns the CPU time (user + system, all threads) a process has
// used, from /proc/<pid>/stat (Linux).
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

func parseStatCPU(stat []byte) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may hold spaces;
	// the fields after the last ')' start with field 3, the state.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed stat")
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// readMachineBusy returns the CPU time all cores spent not idle, from the
// first line of /proc/stat (Linux): user, nice, system, irq, softirq, steal.
func readMachineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("malformed /proc/stat")
	}
	var busy int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, errors.New("malformed /proc/stat")
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / userHZ, nil
}

// sampleRSS reads the RSS of pid now and every interval until the returned
// function is called, which takes a last sample and summarises. It returns
// nil when RSS cannot be read (not Linux, process gone).
func sampleRSS(pid int, interval time.Duration) func() *rssSummary {
	if interval <= 0 {
		interval = time.Second
	}
	var s rssSummary
	add := func() bool {
		kb, err := readRSS(pid)
		if err != nil {
			return false
		}
		if s.Samples == 0 {
			s.StartKB = kb
		}
		s.MaxKB = max(s.MaxKB, kb)
		s.EndKB = kb
		s.Samples++
		s.Trace = append(s.Trace, math.Round(float64(kb)/102.4)/10)
		return true
	}
	add()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				add()
			}
		}
	}()
	return func() *rssSummary {
		close(stop)
		<-done
		add()
		if s.Samples == 0 {
			return nil
		}
		return &s
	}
}

// spawner builds the demo server and starts it, and the reference, as child
// processes on free loopback ports.
type spawner struct {
	dir        string   // temporary directory: binaries and logs
	serverBin  string   // the demo server's binary
	serverArgs []string // flags passed through to it
	refArgs    []string // flags passed to the reference besides -serve-reference
	self       string   // this program, for -serve-reference
	progress   io.Writer
}

// serverPackage is what -spawn builds.
const serverPackage = "github.com/dpopkit/dpop/examples/server"

// newSpawner builds the demo server unless bin names a binary already built.
func newSpawner(ctx context.Context, bin string, serverArgs, refArgs []string, progress io.Writer) (*spawner, error) {
	dir, err := os.MkdirTemp("", "loadgen-")
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &spawner{dir: dir, serverBin: bin, serverArgs: serverArgs, refArgs: refArgs, self: self, progress: progress}
	if s.serverBin == "" {
		goTool, err := exec.LookPath("go")
		if err != nil {
			s.cleanup()
			return nil, fmt.Errorf("-spawn builds %s with the go command: %w (or pass -server-bin)", serverPackage, err)
		}
		s.serverBin = filepath.Join(dir, "server")
		fmt.Fprintf(progress, "loadgen: go build -o %s %s\n", s.serverBin, serverPackage)
		cmd := exec.CommandContext(ctx, goTool, "build", "-o", s.serverBin, serverPackage)
		cmd.Stdout, cmd.Stderr = progress, progress
		if err := cmd.Run(); err != nil {
			s.cleanup()
			return nil, fmt.Errorf("building %s (run loadgen from inside the repository): %w", serverPackage, err)
		}
	}
	return s, nil
}

func (s *spawner) cleanup() { os.RemoveAll(s.dir) }

// child is a started server.
type child struct {
	name   string
	cmd    *exec.Cmd
	url    string
	log    string
	exited chan struct{}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// start runs bin with args plus -addr on a free port and waits until it
// answers HTTP.
func (s *spawner) start(ctx context.Context, name, bin string, args []string) (*child, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(s.dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, append(append([]string(nil), args...), "-addr", addr)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, url: "http://" + addr, log: logPath, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(c.exited) }()
	fmt.Fprintf(s.progress, "loadgen: started %s (pid %d) on %s, log %s\n", name, cmd.Process.Pid, c.url, logPath)

	probe := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := probe.Get(c.url + "/")
		if err == nil {
			resp.Body.Close()
			return c, nil
		}
		select {
		case <-c.exited:
			return nil, fmt.Errorf("%s exited before serving: %s", name, tail(logPath))
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("%s did not answer within 30s: %s", name, tail(logPath))
		}
	}
}

// stop asks the child to shut down and kills it if it takes too long.
func (c *child) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// tail is the end of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

// reference starts one reference server, shared by every target (it keeps
// no state but, with -reference-replay, its proofs' entries), and returns
// its provider and its stop.
func (s *spawner) reference(ctx context.Context) (provider, func(), error) {
	c, err := s.start(ctx, "reference", s.self, append([]string{"-serve-reference"}, s.refArgs...))
	if err != nil {
		return nil, nil, err
	}
	return fixed(endpoint{URL: c.url, PID: c.cmd.Process.Pid}), c.stop, nil
}

// kit starts a fresh demo server for each target: the previous run's replay
// entries (kept 70 s) would otherwise fill the next one's cache.
func (s *spawner) kit() provider {
	return func(ctx context.Context, target string) (endpoint, func(), error) {
		c, err := s.start(ctx, "kit-server", s.serverBin, s.serverArgs)
		if err != nil {
			return endpoint{}, nil, err
		}
		return endpoint{URL: c.url, PID: c.cmd.Process.Pid}, c.stop, nil
	}
}
