package pgstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	osexec "os/exec" // exec is a helper of pgstore_test.go
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// installHint is what a test that needs a private server says when it finds
// none.
const installHint = "install the PostgreSQL server (Debian: apt-get install postgresql); " +
	"this test starts a server of its own, stops it and starts it again, and is not skipped"

// Bounds of the private server's lifecycle; a slow machine is well within
// them, a broken one fails instead of hanging the test.
const (
	serverReadyWithin = 30 * time.Second
	serverExitWithin  = 15 * time.Second
	signalTakesEffect = 5 * time.Second
	// pausedAtMost is when a paused server resumes by itself: a test whose
	// calls hang on it (a call with no bound) then fails on its own bounds
	// instead of hanging until go test's timeout, and a test process that
	// dies while the server is paused leaves no stopped process behind.
	pausedAtMost = 20 * time.Second
)

// pgServer is a PostgreSQL server of one test's own: a data directory made
// by initdb in a temporary directory, served on a free loopback port. The
// test may stop it, start it again on the same port and data, and pause it
// (every process of it stopped with SIGSTOP: a server that hangs rather than
// refuses). It is killed and its directory removed when the test ends,
// failed or not. Its methods must be called from the test's goroutine (or a
// subtest's, passing that subtest's tb).
type pgServer struct {
	// URL is a connection URL to the server's postgres database as the
	// superuser postgres (trust authentication), without a connect timeout:
	// what bounds a call is the caller's to choose.
	URL string

	bin  string              // the directory of initdb and postgres
	base string              // temporary directory, root of everything below
	data string              // data directory
	log  string              // the server's stderr, kept across starts
	port string              // listening port, the same across starts
	cred *syscall.Credential // whom to run as; nil: as this process

	cmd       *osexec.Cmd   // the running postmaster; nil when stopped
	exited    chan struct{} // closed when cmd has exited
	paused    []int         // pids stopped by Pause, the postmaster first
	guard     *osexec.Cmd   // resumes the paused pids after pausedAtMost
	guardDone chan struct{} // closed when guard has exited
}

// startPGServer initdb's a data directory and starts a server on it, with
// pgstore's tables migrated into DefaultSchema of its postgres database. It
// fails tb, never skips, when there is no PostgreSQL server to run.
func startPGServer(tb testing.TB) *pgServer {
	tb.Helper()
	s := &pgServer{bin: serverBinaries(tb), port: freeLoopbackPort(tb)}
	s.cred = serverCredential(tb)
	base, err := os.MkdirTemp("", "pgstore-server-")
	must(tb, err)
	s.base, s.data, s.log = base, filepath.Join(base, "data"), filepath.Join(base, "server.log")
	tb.Cleanup(func() { s.destroy(tb) })
	// The server refuses a data directory others may read, and as root
	// the directory must be the postgres user's: the base directory is
	// only traversable, the data directory the server's alone.
	must(tb, os.Chmod(base, 0o711))
	must(tb, os.Mkdir(s.data, 0o700))
	if s.cred != nil {
		must(tb, os.Chown(s.data, int(s.cred.Uid), int(s.cred.Gid)))
		if fi, err := os.Stat(filepath.Dir(base)); err != nil || fi.Mode().Perm()&0o001 == 0 {
			tb.Fatalf("the postgres user cannot reach %s under %s (%v): point TMPDIR at a directory others may traverse", base, filepath.Dir(base), err)
		}
	}
	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	initdb := s.command(ctx, "initdb", "-D", s.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		tb.Fatalf("initdb %s: %v\n%s", s.data, err, out)
	}
	s.URL = "postgres://postgres@127.0.0.1:" + s.port + "/postgres?sslmode=disable"
	s.Start(tb)
	pool := newPool(tb, s.URL, nil)
	defer pool.Close() // the test's own pools connect when they need to
	if err := Migrate(ctx, pool, DefaultSchema); err != nil {
		tb.Fatalf("migrate the private server: %v", err)
	}
	return s
}

// serverBinaries is the directory of the newest PostgreSQL server found
// (initdb and postgres side by side) in pg_config --bindir,
// /usr/lib/postgresql/*/bin or the directory of postgres on PATH. It fails
// tb, saying what to install, when there is none.
func serverBinaries(tb testing.TB) string {
	tb.Helper()
	var dirs []string
	if out, err := osexec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	lib, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	dirs = append(dirs, lib...)
	if p, err := osexec.LookPath("postgres"); err == nil {
		if p, err = filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	best, bestVersion := "", []int(nil)
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			continue
		}
		v := serverVersion(filepath.Join(d, "postgres"))
		if v != nil && slices.Compare(v, bestVersion) > 0 {
			best, bestVersion = d, v
		}
	}
	if best == "" {
		tb.Fatalf("no PostgreSQL server binaries (initdb and postgres) in pg_config --bindir, /usr/lib/postgresql/*/bin or PATH (looked in %q): %s", dirs, installHint)
	}
	return best
}

// versionNumber is the version in the output of postgres --version, e.g.
// "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)".
var versionNumber = regexp.MustCompile(`\(PostgreSQL\) (\d+(?:\.\d+)*)`)

// serverVersion is the version of the postgres binary at path, as numbers;
// nil when it does not run or says no version.
func serverVersion(path string) []int {
	out, err := osexec.Command(path, "--version").Output()
	if err != nil {
		return nil
	}
	m := versionNumber.FindStringSubmatch(string(out))
	if m == nil {
		return nil
	}
	var v []int
	for f := range strings.SplitSeq(m[1], ".") {
		n, _ := strconv.Atoi(f)
		v = append(v, n)
	}
	return v
}

// serverCredential is whom the server runs as: nil (this process's user)
// unless this process is root, which PostgreSQL refuses; then the postgres
// user, or tb fails.
func serverCredential(tb testing.TB) *syscall.Credential {
	tb.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		tb.Fatalf("the tests run as root, which the PostgreSQL server refuses, and there is no postgres user to run it as (%v): %s", err, installHint)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		tb.Fatalf("user postgres: %v", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// freeLoopbackPort is a loopback port nothing listens on now.
func freeLoopbackPort(tb testing.TB) string {
	tb.Helper()
	_, port, err := net.SplitHostPort(freePort(tb))
	must(tb, err)
	return port
}

// command is the server binary name of s run with args as the server's
// user, in the data directory.
func (s *pgServer) command(ctx context.Context, name string, args ...string) *osexec.Cmd {
	cmd := osexec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.Dir = s.data
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	// Its own process group, so that a terminal's signals reach the test
	// only; killed with the test process if that dies without cleaning up
	// (go test -timeout). Go sets the parent-death signal after switching
	// users, so the switch does not clear it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Start starts the server on its data directory and port (again, after
// Stop), and returns once it accepts connections; it fails tb when the
// server is running already, exits, or is not ready within
// serverReadyWithin.
func (s *pgServer) Start(tb testing.TB) {
	tb.Helper()
	if s.cmd != nil {
		tb.Fatal("pgServer.Start: the server is running")
	}
	logFile, err := os.OpenFile(s.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	must(tb, err)
	defer logFile.Close() // the server has its own copy
	cmd := s.command(bg, "postgres", "-D", s.data, "-p", s.port, "-k", s.data,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(serverReadyWithin)
	for {
		ctx, cancel := context.WithTimeout(bg, time.Second)
		conn, err := pgx.Connect(ctx, s.URL)
		cancel()
		if err == nil {
			conn.Close(bg)
			return
		}
		select {
		case <-exited:
			s.cmd = nil
			tb.Fatalf("postgres exited at start (%v):\n%s", cmd.ProcessState, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("postgres does not accept connections after %v (%v):\n%s", serverReadyWithin, err, s.logTail())
		}
	}
}

// Stop shuts the server down as an operator would (SIGINT, PostgreSQL's
// fast shutdown: sessions are ended, not waited for; SIGTERM would be the
// smart shutdown, which waits for the pool's connections to go) and returns
// once the postmaster, which waits for every other process of the server,
// has exited: nothing listens on the port any more.
func (s *pgServer) Stop(tb testing.TB) {
	tb.Helper()
	if s.cmd == nil || s.paused != nil {
		tb.Fatal("pgServer.Stop: the server is not running, or paused")
	}
	must(tb, s.cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-s.exited:
		s.cmd = nil
	case <-time.After(serverExitWithin):
		tb.Fatalf("postgres has not stopped %v after SIGINT:\n%s", serverExitWithin, s.logTail())
	}
}

// Pause stops every process of the server with SIGSTOP, the postmaster
// first, so that it forks no new one, then its children (checkpointer,
// writers, and the backends of open connections), and returns once all are
// stopped. Connections to the port are still accepted by the kernel, and
// nothing answers on them: the server hangs. A cleanup resumes it if the
// test ends first, before the pools opened after it are closed, and so does
// a guard process after pausedAtMost, even if the test process has died by
// then (the server's children, which PostgreSQL puts in sessions of their
// own, would otherwise stay stopped for good); Resume then fails tb.
func (s *pgServer) Pause(tb testing.TB) {
	tb.Helper()
	if s.cmd == nil || s.paused != nil {
		tb.Fatal("pgServer.Pause: the server is not running, or paused already")
	}
	tb.Cleanup(func() {
		if s.paused != nil {
			s.resume()
		}
	})
	pm := s.cmd.Process.Pid
	s.paused = []int{pm}
	must(tb, s.signalStopped(pm))
	children, err := childrenOf(pm)
	must(tb, err)
	for _, pid := range children {
		if err := s.signalStopped(pid); errors.Is(err, syscall.ESRCH) {
			continue // it exited before the postmaster stopped
		} else if err != nil {
			tb.Fatal(err)
		}
		s.paused = append(s.paused, pid)
	}
	if len(s.paused) < 2 {
		tb.Fatalf("pgServer.Pause: postgres (pid %d) has no child process to stop", pm)
	}
	args := []string{"-c", `sleep "$1" && shift && kill -s CONT "$@"`, "pgstore-pause-guard", strconv.Itoa(int(pausedAtMost / time.Second))}
	for _, pid := range slices.Backward(s.paused) {
		args = append(args, strconv.Itoa(pid))
	}
	guard := osexec.Command("/bin/sh", args...)
	guard.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // killed with its sleep
	must(tb, guard.Start())
	done := make(chan struct{})
	go func() { guard.Wait(); close(done) }()
	s.guard, s.guardDone = guard, done
}

// signalStopped sends SIGSTOP to pid and waits until it is stopped.
func (s *pgServer) signalStopped(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return err
	}
	deadline := time.Now().Add(signalTakesEffect)
	for {
		state, _, err := procStat(pid)
		switch {
		case err != nil:
			return err
		case state == 'T':
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("pid %d not stopped %v after SIGSTOP (state %c)", pid, signalTakesEffect, state)
		}
		time.Sleep(time.Millisecond)
	}
}

// Resume continues what Pause stopped, children first.
func (s *pgServer) Resume(tb testing.TB) {
	tb.Helper()
	if s.paused == nil {
		tb.Fatal("pgServer.Resume: the server is not paused")
	}
	var guardExited *os.ProcessState
	select {
	case <-s.guardDone:
		guardExited = s.guard.ProcessState
	default:
	}
	if err := s.resume(); err != nil {
		tb.Fatal(err)
	}
	if guardExited != nil {
		tb.Fatalf("pgServer.Resume: the guard had resumed the server, paused for %v (%v): something waited for it without a bound", pausedAtMost, guardExited)
	}
}

// resume ends the guard, sends SIGCONT to the paused processes, children
// first, and forgets them.
func (s *pgServer) resume() error {
	if s.guard != nil {
		syscall.Kill(-s.guard.Process.Pid, syscall.SIGKILL)
		<-s.guardDone
		s.guard = nil
	}
	err := continueAll(s.paused)
	s.paused = nil
	return err
}

// continueAll sends SIGCONT to pids, the last first; those that have exited
// are no error.
func continueAll(pids []int) error {
	var errs []error
	for _, pid := range slices.Backward(pids) {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("SIGCONT %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// destroy ends the server if it runs (resumed if paused, then PostgreSQL's
// immediate shutdown, SIGQUIT; SIGKILL if that is not done within
// serverExitWithin) and removes its directory. The end of the server's log
// is part of a failed test's output.
func (s *pgServer) destroy(tb testing.TB) {
	var errs []error
	if s.cmd != nil {
		if s.paused != nil {
			errs = append(errs, s.resume())
		}
		s.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-s.exited:
		case <-time.After(serverExitWithin):
			errs = append(errs, fmt.Errorf("postgres (pid %d) ignored SIGQUIT for %v: killed", s.cmd.Process.Pid, serverExitWithin))
			s.cmd.Process.Kill()
			<-s.exited
		}
		s.cmd = nil
	}
	if err := errors.Join(errs...); err != nil {
		tb.Errorf("pgServer: %v", err)
	}
	if tb.Failed() {
		tb.Logf("the end of the private server's log:\n%s", s.logTail())
	}
	if err := os.RemoveAll(s.base); err != nil {
		tb.Errorf("pgServer: %v", err)
	}
}

// logTail is the end of the server's log.
func (s *pgServer) logTail() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return err.Error()
	}
	const keep = 4 << 10
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// procStat is the state and parent pid of process pid, from
// /proc/pid/stat.
func procStat(pid int) (state byte, ppid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, fmt.Errorf("pid %d: %w", pid, syscall.ESRCH)
	} else if err != nil {
		return 0, 0, err
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	var f []string
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 {
		f = strings.Fields(string(b[i+1:]))
	}
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, err
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, err := procStat(child); err == nil && ppid == pid {
			kids = append(kids, child)
		}
	}
	return kids, nil
}
