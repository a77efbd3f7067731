// Command mutate is a small AST mutation tester: it makes one-site mutants of
// a package's non-test Go files and runs the package's own tests against each
// one, to measure how many of them the tests kill.
//
// Mutant kinds (each mutant changes exactly one site):
//
//	cmp       a comparison negated: == ↔ !=, < → >=, <= → >, > → <=, >= → <
//	logic     && ↔ ||
//	check     a deleted check: an if statement without else whose body ends in
//	          return, break, continue, goto or panic(...) never runs its body.
//	          By default (-delete=neutralize) its condition c becomes
//	          `false && (c)`: the guard is gone but the init statement still
//	          runs and the variables only the condition used are still used, so
//	          the mutant compiles where removing the statement would fail with
//	          "declared and not used". -delete=remove removes the whole
//	          statement instead (init included; else-if positions skipped).
//	errnil    error swallowing: in a function whose last declared result type
//	          is error, the last result of a return statement (one expression
//	          per result; not already nil) becomes nil.
//
// The tree is never modified: each mutated file is written to a temporary
// directory and the tests run with `go test -overlay`, from the -C directory
// (so that its go.work applies), as
//
//	go test -count=1 -failfast -vet=off -timeout <timeout> -overlay <json> <pkg>
//
// A mutant is "killed" when the tests fail or time out (the test binary's
// -timeout, or -kill for the whole go command), "survived" when they pass, and
// "did not build" when go test reports [build failed] or [setup failed] with
// an error in the mutated file; those are left out of the kill ratio, as are
// "error" results (a build failure elsewhere, as when someone is editing the
// tree, or go test failing without a failing test, a panic or a timeout that
// could be seen), which are run again at the end (-retries). Before the
// mutants, the package's tests run once unmutated: if they fail, the package
// is skipped. The tree may change during a run (mutants are made from the
// files as read at the start): a test failing for that reason counts as a
// kill.
//
// Usage (from this directory; it has a go.mod and go.work of its own, outside
// the repository's workspace):
//
//	go run . [flags]
//	go run . -C /work/main -pkg ./handlers
//	go run . -pkg .,./handlers,./middleware -j 2
//	go run . -pkg ./handlers -list                      # list the mutants, run nothing
//	go run . -pkg ./handlers -list -v                   # ... with the mutated line
//	go run . -pkg ./handlers -files token.go -match ':12[0-9]:'
//	go run . -pkg ./handlers -id 17,42                  # just these mutants (ids from -list)
//
// Flags:
//
//	-C dir         directory to run the go command in (default: the
//	               repository root, found from this directory; the packages
//	               are relative to it)
//	-pkg list      comma-separated packages, relative to -C (default ".");
//	               they run one after the other
//	-j n           mutants run in parallel (default 2)
//	-files list    comma-separated glob patterns on file base names
//	               (filepath.Match): only mutants in matching files
//	-match re      only mutants whose "file:line:col kind" matches re
//	-kinds list    only these kinds (cmp,logic,check,errnil)
//	-id list       only these mutant ids (as -list prints them; ids are
//	               per package, in file then source order, and stay the same
//	               while the source and -delete do)
//	-list          print the selected mutants and exit (-v: with the line
//	               before and after)
//	-delete mode   neutralize (default) or remove: how check mutants are made
//	-timeout d     go test -timeout for the test binary (default 60s)
//	-kill d        kill the whole go test (its process group) after d; counts
//	               as killed (default 90s)
//	-out dir       reports: dir/<name>.txt (summary, survivors by file, the
//	               mutants that did not build or errored) and dir/<name>.json
//	               (every mutant with its result); <name> is "root" for ".",
//	               else the package directory with / as _; ".subset" is added
//	               when a selection flag is used. Empty: no files
//	               (default /tmp/mut)
//	-nobaseline    skip the unmutated run
//	-retries n     rounds of re-running the mutants whose result was "error"
//	               (default 2), each once the unmutated tests pass again
//	               (waiting up to -wait, default 10m, polling every 30s)
//	-resume file   a previous run's JSON report for the same package: its
//	               kills and survivals are reused for the mutants that are
//	               the same change of the same line; the rest run
//	-rerun-survivors  with -resume: reuse only the kills, and run the
//	               survivors again (after tests were added)
//	-v             with -list: the mutated lines; when running: each
//	               result's go test output tail for errors
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Mutant is one single-site change of one file.
type Mutant struct {
	ID      int    `json:"id"`
	File    string `json:"file"` // relative to -C
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Kind    string `json:"kind"`
	Orig    string `json:"orig"`
	Mut     string `json:"mut"`
	Snippet string `json:"snippet"`

	abs        string // absolute path of the file
	src        []byte // the file as read at generation time
	start, end int    // byte range replaced
	repl       string

	Status  string  `json:"status,omitempty"` // killed, survived, notbuilt, error
	Reason  string  `json:"reason,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
	Output  string  `json:"output,omitempty"` // tail, for notbuilt and error
}

func (m *Mutant) site() string { return fmt.Sprintf("%s:%d:%d", m.File, m.Line, m.Col) }

func (m *Mutant) mutated() []byte {
	out := make([]byte, 0, len(m.src)+len(m.repl))
	out = append(out, m.src[:m.start]...)
	out = append(out, m.repl...)
	return append(out, m.src[m.end:]...)
}

var (
	flagC              = flag.String("C", "", "directory to run the go command in (default: the repository root)")
	flagPkg            = flag.String("pkg", ".", "comma-separated packages relative to -C")
	flagJ              = flag.Int("j", 2, "mutants run in parallel")
	flagFiles          = flag.String("files", "", "comma-separated glob patterns on file base names")
	flagMatch          = flag.String("match", "", `regexp on "file:line:col kind"`)
	flagKinds          = flag.String("kinds", "", "comma-separated kinds: cmp,logic,check,errnil")
	flagID             = flag.String("id", "", "comma-separated mutant ids")
	flagList           = flag.Bool("list", false, "list the mutants and exit")
	flagDelete         = flag.String("delete", "neutralize", "check mutants: neutralize or remove")
	flagTimeout        = flag.Duration("timeout", 60*time.Second, "go test -timeout")
	flagKill           = flag.Duration("kill", 90*time.Second, "kill go test after this long (counts as killed)")
	flagOut            = flag.String("out", "/tmp/mut", "report directory (empty: none)")
	flagNoBase         = flag.Bool("nobaseline", false, "skip the unmutated test run")
	flagRetries        = flag.Int("retries", 2, "rounds of retrying mutants that errored")
	flagWait           = flag.Duration("wait", 10*time.Minute, "before a retry, how long to wait for the unmutated tests to pass")
	flagResume         = flag.String("resume", "", "a previous run's JSON report: reuse its results for unchanged mutants")
	flagRerunSurvivors = flag.Bool("rerun-survivors", false, "with -resume: reuse only kills, run the survivors again")
	flagVerbose        = flag.Bool("v", false, "verbose")
	subsetActive       bool
	resumeNote         string
)

func main() {
	flag.Parse()
	if flag.NArg() > 0 {
		fatalf("unexpected arguments %q (packages go in -pkg)", flag.Args())
	}
	if *flagDelete != "neutralize" && *flagDelete != "remove" {
		fatalf("-delete must be neutralize or remove")
	}
	dir := *flagC
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			fatalf("%v", err)
		}
		dir = filepath.Join(wd, "..", "..") // .ci/mutate → the repository root
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		fatalf("%v", err)
	}
	subsetActive = *flagFiles != "" || *flagMatch != "" || *flagKinds != "" || *flagID != ""
	if *flagResume != "" && len(splitList(*flagPkg)) != 1 {
		fatalf("-resume takes a single -pkg")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	var summaries []string
	for _, pkg := range splitList(*flagPkg) {
		s, err := runPackage(ctx, dir, pkg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mutate: %s: %v\n", pkg, err)
			summaries = append(summaries, fmt.Sprintf("%s: %v", pkg, err))
			continue
		}
		if s != "" {
			summaries = append(summaries, s)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if !*flagList && len(summaries) > 0 {
		fmt.Println("== summary")
		for _, s := range summaries {
			fmt.Println(s)
		}
		fmt.Printf("total wall time %s\n", time.Since(start).Round(time.Second))
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mutate: "+format+"\n", args...)
	os.Exit(2)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// listedPackage is what go list -json says of a package, as far as used here.
type listedPackage struct {
	Dir        string
	ImportPath string
	GoFiles    []string
}

func goList(ctx context.Context, dir, pkg string) (*listedPackage, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-json", pkg)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %v: %s", pkg, err, stderr.String())
	}
	var p listedPackage
	if err := json.Unmarshal(out, &p); err != nil {
		return nil, fmt.Errorf("go list %s: %v", pkg, err)
	}
	return &p, nil
}

func reportName(pkg string) string {
	p := strings.Trim(filepath.ToSlash(filepath.Clean(pkg)), "/")
	p = strings.TrimPrefix(p, "./")
	if p == "." || p == "" {
		p = "root"
	}
	p = strings.ReplaceAll(p, "/", "_")
	if subsetActive {
		p += ".subset"
	}
	return p
}

func runPackage(ctx context.Context, dir, pkg string) (string, error) {
	lp, err := goList(ctx, dir, pkg)
	if err != nil {
		return "", err
	}
	all, err := generate(dir, lp)
	if err != nil {
		return "", err
	}
	sel, err := selectMutants(all)
	if err != nil {
		return "", err
	}
	if *flagList {
		for _, m := range sel {
			fmt.Printf("%s #%d %s %s: %s → %s\n", pkg, m.ID, m.site(), m.Kind, m.Orig, m.Mut)
			if *flagVerbose {
				printLines(m)
			}
		}
		fmt.Fprintf(os.Stderr, "%s: %d mutants (%d selected)\n", pkg, len(all), len(sel))
		return "", nil
	}

	pkgStart := time.Now()
	if !*flagNoBase {
		fmt.Fprintf(os.Stderr, "== %s: baseline (unmutated) run\n", pkg)
		status, reason, out, d := runTests(ctx, dir, pkg, "")
		if status != "survived" {
			return "", fmt.Errorf("baseline: the unmutated tests did not pass (%s, %s):\n%s", status, reason, tail(out, 40))
		}
		fmt.Fprintf(os.Stderr, "== %s: baseline passed in %s\n", pkg, d.Round(100*time.Millisecond))
	}
	todo := sel
	if *flagResume != "" {
		reused, err := resume(*flagResume, sel)
		if err != nil {
			return "", err
		}
		todo = nil
		for _, m := range sel {
			if m.Status == "" {
				todo = append(todo, m)
			}
		}
		resumeNote = fmt.Sprintf("resumed from %s: %d results reused (kills%s), %d mutants run now", *flagResume, reused,
			map[bool]string{false: " and survivals", true: " only"}[*flagRerunSurvivors], len(todo))
		fmt.Fprintf(os.Stderr, "== %s: %s\n", pkg, resumeNote)
	}
	fmt.Fprintf(os.Stderr, "== %s: %d mutants to run (%d selected, %d generated), -j %d\n", pkg, len(todo), len(sel), len(all), *flagJ)

	tmp, err := os.MkdirTemp("", "mutate-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)

	jobs := make(chan *Mutant)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for w := 0; w < max(1, *flagJ); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range jobs {
				runMutant(ctx, dir, pkg, tmp, m)
				mu.Lock()
				done++
				fmt.Fprintf(os.Stderr, "[%d/%d] %-8s #%d %s %s: %s → %s (%.1fs)%s\n", done, len(todo), m.Status, m.ID, m.site(), m.Kind, m.Orig, m.Mut, m.Seconds, reasonSuffix(m))
				if *flagVerbose && (m.Status == "error" || m.Status == "notbuilt") {
					fmt.Fprintln(os.Stderr, indent(m.Output))
				}
				mu.Unlock()
			}
		}()
	}
	feed := func(ms []*Mutant) {
		for _, m := range ms {
			select {
			case jobs <- m:
			case <-ctx.Done():
				return
			}
		}
	}
	feed(todo)
	// Errors are mostly the tree failing to build or its tests failing while
	// someone edits it: once the unmutated tests pass again, run those
	// mutants again.
	for round := 1; round <= *flagRetries && ctx.Err() == nil; round++ {
		wg2 := waitIdle(&mu, &done, len(todo))
		wg2()
		var again []*Mutant
		for _, m := range sel {
			if m.Status == "error" {
				again = append(again, m)
			}
		}
		if len(again) == 0 {
			break
		}
		fmt.Fprintf(os.Stderr, "== %s: retry %d of %d mutants that errored; waiting for the unmutated tests to pass\n", pkg, round, len(again))
		if !waitBaseline(ctx, dir, pkg) {
			fmt.Fprintf(os.Stderr, "== %s: the unmutated tests still do not pass; not retrying\n", pkg)
			break
		}
		mu.Lock()
		done -= len(again)
		mu.Unlock()
		feed(again)
	}
	close(jobs)
	wg.Wait()
	if ctx.Err() != nil {
		return "", fmt.Errorf("interrupted")
	}

	rep, summary := report(pkg, lp, all, sel, time.Since(pkgStart))
	fmt.Print(rep)
	if *flagOut != "" {
		if err := os.MkdirAll(*flagOut, 0o755); err != nil {
			return summary, err
		}
		name := filepath.Join(*flagOut, reportName(pkg))
		if err := os.WriteFile(name+".txt", []byte(rep), 0o644); err != nil {
			return summary, err
		}
		js, _ := json.MarshalIndent(sel, "", "  ")
		if err := os.WriteFile(name+".json", append(js, '\n'), 0o644); err != nil {
			return summary, err
		}
		fmt.Fprintf(os.Stderr, "== %s: wrote %s.txt and %s.json\n", pkg, name, name)
	}
	return summary, nil
}

// waitIdle returns a function that waits until n mutants are done.
func waitIdle(mu *sync.Mutex, done *int, n int) func() {
	return func() {
		for {
			mu.Lock()
			d := *done
			mu.Unlock()
			if d >= n {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// waitBaseline runs the unmutated tests until they pass, for up to -wait.
func waitBaseline(ctx context.Context, dir, pkg string) bool {
	deadline := time.Now().Add(*flagWait)
	for ctx.Err() == nil {
		status, reason, _, _ := runTests(ctx, dir, pkg, "")
		if status == "survived" {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		fmt.Fprintf(os.Stderr, "== %s: unmutated tests: %s (%s); again in 30s\n", pkg, status, reason)
		select {
		case <-time.After(30 * time.Second):
		case <-ctx.Done():
		}
	}
	return false
}

// resume copies the results of a previous run's JSON report onto the
// selected mutants that are the same change (file, position, kind, text and
// source line) and were killed or survived (the others are cheap to run
// again; survivors too with -rerun-survivors); it returns how many.
func resume(path string, sel []*Mutant) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var prev []*Mutant
	if err := json.Unmarshal(data, &prev); err != nil {
		return 0, fmt.Errorf("%s: %v", path, err)
	}
	key := func(m *Mutant) string {
		return strings.Join([]string{m.site(), m.Kind, m.Orig, m.Mut, m.Snippet}, "\x00")
	}
	old := map[string]*Mutant{}
	for _, m := range prev {
		if m.Status == "killed" || m.Status == "survived" && !*flagRerunSurvivors {
			old[key(m)] = m
		}
	}
	n := 0
	for _, m := range sel {
		if p := old[key(m)]; p != nil {
			m.Status, m.Reason, m.Seconds, m.Output = p.Status, p.Reason, p.Seconds, p.Output
			n++
		}
	}
	return n, nil
}

func reasonSuffix(m *Mutant) string {
	if m.Reason == "" || m.Status == "survived" {
		return ""
	}
	return " [" + m.Reason + "]"
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

func printLines(m *Mutant) {
	before := lineAround(m.src, m.start, m.end)
	mut := m.mutated()
	after := lineAround(mut, m.start, m.start+len(m.repl))
	fmt.Printf("    - %s\n    + %s\n", strings.ReplaceAll(before, "\n", "\n      "), strings.ReplaceAll(after, "\n", "\n      "))
}

// lineAround returns the whole lines of src that hold [start, end).
func lineAround(src []byte, start, end int) string {
	s := bytes.LastIndexByte(src[:start], '\n') + 1
	e := bytes.IndexByte(src[end:], '\n')
	if e < 0 {
		e = len(src)
	} else {
		e += end
	}
	return string(src[s:e])
}

func selectMutants(all []*Mutant) ([]*Mutant, error) {
	var re *regexp.Regexp
	if *flagMatch != "" {
		var err error
		if re, err = regexp.Compile(*flagMatch); err != nil {
			return nil, fmt.Errorf("-match: %v", err)
		}
	}
	kinds := map[string]bool{}
	for _, k := range splitList(*flagKinds) {
		switch k {
		case "cmp", "logic", "check", "errnil":
			kinds[k] = true
		default:
			return nil, fmt.Errorf("-kinds: unknown kind %q", k)
		}
	}
	ids := map[int]bool{}
	for _, s := range splitList(*flagID) {
		n, err := strconv.Atoi(strings.TrimPrefix(s, "#"))
		if err != nil {
			return nil, fmt.Errorf("-id: %v", err)
		}
		ids[n] = true
	}
	globs := splitList(*flagFiles)
	var sel []*Mutant
	for _, m := range all {
		if len(globs) > 0 {
			ok := false
			for _, g := range globs {
				if match, err := filepath.Match(g, filepath.Base(m.File)); err != nil {
					return nil, fmt.Errorf("-files: %v", err)
				} else if match {
					ok = true
				}
			}
			if !ok {
				continue
			}
		}
		if re != nil && !re.MatchString(m.site()+" "+m.Kind) {
			continue
		}
		if len(kinds) > 0 && !kinds[m.Kind] {
			continue
		}
		if len(ids) > 0 && !ids[m.ID] {
			continue
		}
		sel = append(sel, m)
	}
	return sel, nil
}

// ---- generation ----

func generate(dir string, lp *listedPackage) ([]*Mutant, error) {
	files := append([]string(nil), lp.GoFiles...)
	sort.Strings(files)
	var all []*Mutant
	for _, name := range files {
		abs := filepath.Join(lp.Dir, name)
		rel, err := filepath.Rel(dir, abs)
		if err != nil {
			rel = abs
		}
		src, err := os.ReadFile(abs)
		if err != nil {
			return nil, err
		}
		ms, err := generateFile(abs, filepath.ToSlash(rel), src)
		if err != nil {
			return nil, err
		}
		all = append(all, ms...)
	}
	for i, m := range all {
		m.ID = i + 1
	}
	return all, nil
}

type generator struct {
	fset *token.FileSet
	src  []byte
	abs  string
	rel  string
	out  []*Mutant
}

func generateFile(abs, rel string, src []byte) ([]*Mutant, error) {
	g := &generator{fset: token.NewFileSet(), src: src, abs: abs, rel: rel}
	f, err := parser.ParseFile(g.fset, abs, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var stack []ast.Node
	ast.Inspect(f, func(n ast.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		var parent ast.Node
		if len(stack) > 0 {
			parent = stack[len(stack)-1]
		}
		stack = append(stack, n)
		switch n := n.(type) {
		case *ast.GenDecl:
			// Comparisons in const declarations would change constants'
			// types or values at compile time only; skip declarations.
			if n.Tok == token.CONST {
				stack = stack[:len(stack)-1]
				return false
			}
		case *ast.BinaryExpr:
			g.binary(n)
		case *ast.IfStmt:
			g.ifStmt(n, parent)
		case *ast.ReturnStmt:
			g.ret(n, enclosingFunc(stack))
		}
		return true
	})
	sort.SliceStable(g.out, func(i, j int) bool { return g.out[i].start < g.out[j].start })
	return g.out, nil
}

func (g *generator) off(p token.Pos) int { return g.fset.Position(p).Offset }

func (g *generator) text(n ast.Node) string { return string(g.src[g.off(n.Pos()):g.off(n.End())]) }

func (g *generator) add(kind string, at token.Pos, start, end int, repl, orig, mut string) {
	pos := g.fset.Position(at)
	g.out = append(g.out, &Mutant{
		File: g.rel, Line: pos.Line, Col: pos.Column, Kind: kind,
		Orig: orig, Mut: mut, Snippet: short(lineAround(g.src, pos.Offset, pos.Offset), 120),
		abs: g.abs, src: g.src, start: start, end: end, repl: repl,
	})
}

var flips = map[token.Token]token.Token{
	token.EQL: token.NEQ, token.NEQ: token.EQL,
	token.LSS: token.GEQ, token.LEQ: token.GTR,
	token.GTR: token.LEQ, token.GEQ: token.LSS,
	token.LAND: token.LOR, token.LOR: token.LAND,
}

func (g *generator) binary(e *ast.BinaryExpr) {
	to, ok := flips[e.Op]
	if !ok {
		return
	}
	kind := "cmp"
	if e.Op == token.LAND || e.Op == token.LOR {
		kind = "logic"
	}
	s := g.off(e.OpPos)
	x, y := short(g.text(e.X), 40), short(g.text(e.Y), 40)
	g.add(kind, e.OpPos, s, s+len(e.Op.String()), to.String(),
		x+" "+e.Op.String()+" "+y, x+" "+to.String()+" "+y)
}

// terminates reports whether a block ends in return, break, continue, goto or
// a call of panic.
func terminates(b *ast.BlockStmt) bool {
	if b == nil || len(b.List) == 0 {
		return false
	}
	switch s := b.List[len(b.List)-1].(type) {
	case *ast.ReturnStmt, *ast.BranchStmt:
		return true
	case *ast.ExprStmt:
		if c, ok := s.X.(*ast.CallExpr); ok {
			if id, ok := c.Fun.(*ast.Ident); ok && id.Name == "panic" {
				return true
			}
		}
	}
	return false
}

func (g *generator) ifStmt(s *ast.IfStmt, parent ast.Node) {
	if s.Else != nil || !terminates(s.Body) {
		return
	}
	cond := short(g.text(s.Cond), 60)
	last := s.Body.List[len(s.Body.List)-1]
	orig := "if " + cond + " { … " + short(g.text(last), 40) + " }"
	if *flagDelete == "remove" {
		switch parent.(type) {
		case *ast.BlockStmt, *ast.CaseClause, *ast.CommClause:
		default:
			return // an else-if, or a labeled statement: removing it would not parse
		}
		start, end := g.off(s.Pos()), g.off(s.End())
		// Keep the line count so that later positions do not move.
		repl := strings.Repeat("\n", bytes.Count(g.src[start:end], []byte("\n")))
		g.add("check", s.Pos(), start, end, repl, orig, "(removed)")
		return
	}
	start, end := g.off(s.Cond.Pos()), g.off(s.Cond.End())
	g.add("check", s.Pos(), start, end, "false && ("+string(g.src[start:end])+")", orig, "if false && (…) {…} (check deleted)")
}

func enclosingFunc(stack []ast.Node) *ast.FuncType {
	for i := len(stack) - 1; i >= 0; i-- {
		switch f := stack[i].(type) {
		case *ast.FuncLit:
			return f.Type
		case *ast.FuncDecl:
			return f.Type
		}
	}
	return nil
}

func (g *generator) ret(r *ast.ReturnStmt, ft *ast.FuncType) {
	if ft == nil || ft.Results == nil || len(ft.Results.List) == 0 {
		return
	}
	lastField := ft.Results.List[len(ft.Results.List)-1]
	if id, ok := lastField.Type.(*ast.Ident); !ok || id.Name != "error" {
		return
	}
	n := 0
	for _, f := range ft.Results.List {
		n += max(1, len(f.Names))
	}
	if len(r.Results) != n {
		return // a bare return, or return f() of several results
	}
	last := r.Results[len(r.Results)-1]
	if id, ok := last.(*ast.Ident); ok && id.Name == "nil" {
		return
	}
	var parts []string
	for _, e := range r.Results[:len(r.Results)-1] {
		parts = append(parts, short(g.text(e), 30))
	}
	head := "return "
	if len(parts) > 0 {
		head += strings.Join(parts, ", ") + ", "
	}
	g.add("errnil", last.Pos(), g.off(last.Pos()), g.off(last.End()), "nil",
		head+short(g.text(last), 50), head+"nil")
}

var spaces = regexp.MustCompile(`\s+`)

func short(s string, n int) string {
	s = strings.TrimSpace(spaces.ReplaceAllString(s, " "))
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// ---- running ----

func runMutant(ctx context.Context, dir, pkg, tmp string, m *Mutant) {
	d, err := os.MkdirTemp(tmp, fmt.Sprintf("m%d-", m.ID))
	if err != nil {
		m.Status, m.Reason = "error", err.Error()
		return
	}
	defer os.RemoveAll(d)
	file := filepath.Join(d, filepath.Base(m.abs))
	if err := os.WriteFile(file, m.mutated(), 0o644); err != nil {
		m.Status, m.Reason = "error", err.Error()
		return
	}
	ov, _ := json.Marshal(map[string]map[string]string{"Replace": {m.abs: file}})
	overlay := filepath.Join(d, "overlay.json")
	if err := os.WriteFile(overlay, ov, 0o644); err != nil {
		m.Status, m.Reason = "error", err.Error()
		return
	}
	status, reason, out, dur := runTests(ctx, dir, pkg, overlay)
	if status == "notbuilt" && !strings.Contains(out, file) {
		// The compiler did not complain about the mutated file: the tree
		// itself does not build (someone is editing it). Retried later.
		status, reason = "error", "the tree does not build: "+reason
	}
	m.Status, m.Reason, m.Seconds = status, reason, dur.Seconds()
	if status == "notbuilt" || status == "error" {
		m.Output = tail(out, 15)
	}
}

var (
	reBuildFailed = regexp.MustCompile(`(?m)^FAIL\s+\S+\s+\[(build|setup) failed\]`)
	reTestFail    = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)
	rePanic       = regexp.MustCompile(`(?m)^panic: (.*)$`)
	reFailLine    = regexp.MustCompile(`(?m)^FAIL\s`)
)

// runTests runs the package's tests, with overlay if not empty, and classifies
// the result: survived (pass), killed, notbuilt or error.
func runTests(ctx context.Context, dir, pkg, overlay string) (status, reason, output string, d time.Duration) {
	args := []string{"test", "-count=1", "-failfast", "-vet=off", "-timeout=" + flagTimeout.String()}
	if overlay != "" {
		args = append(args, "-overlay="+overlay)
	}
	args = append(args, pkg)
	cctx, cancel := context.WithTimeout(ctx, *flagKill)
	defer cancel()
	cmd := exec.CommandContext(cctx, "go", args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The go command and the test binary it started: their process group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 10 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	d = time.Since(start)
	out := buf.String()
	switch {
	case ctx.Err() != nil:
		return "error", "interrupted", out, d
	case cctx.Err() != nil:
		return "killed", "timeout: go test killed after " + flagKill.String(), out, d
	case err == nil:
		return "survived", "", out, d
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return "error", err.Error(), out, d
	}
	if reBuildFailed.MatchString(out) {
		return "notbuilt", firstCompileError(out), out, d
	}
	if strings.Contains(out, "panic: test timed out") {
		return "killed", "timeout: test binary -timeout " + flagTimeout.String(), out, d
	}
	if ms := reTestFail.FindAllStringSubmatch(out, -1); len(ms) > 0 {
		// The innermost (last listed first by go test) failing test.
		return "killed", "FAIL " + ms[0][1], out, d
	}
	if ms := rePanic.FindStringSubmatch(out); ms != nil {
		return "killed", "panic: " + short(ms[1], 80), out, d
	}
	if reFailLine.MatchString(out) {
		return "killed", "FAIL (" + short(lastLine(out), 80) + ")", out, d
	}
	return "error", short(lastLine(out), 120), out, d
}

func firstCompileError(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, ".go:") {
			return short(l, 120)
		}
	}
	return "build failed"
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---- report ----

type counts struct{ gen, notbuilt, killed, survived, errors int }

func (c counts) String() string {
	pct := "n/a"
	if c.killed+c.survived > 0 {
		pct = fmt.Sprintf("%.1f%%", 100*float64(c.killed)/float64(c.killed+c.survived))
	}
	s := fmt.Sprintf("%d mutants, %d did not build, %d killed, %d survived, %s killed (%d/%d)",
		c.gen, c.notbuilt, c.killed, c.survived, pct, c.killed, c.killed+c.survived)
	if c.errors > 0 {
		s += fmt.Sprintf(", %d errors", c.errors)
	}
	return s
}

func (c *counts) add(m *Mutant) {
	c.gen++
	switch m.Status {
	case "notbuilt":
		c.notbuilt++
	case "killed":
		c.killed++
	case "survived":
		c.survived++
	default:
		c.errors++
	}
}

func report(pkg string, lp *listedPackage, all, sel []*Mutant, wall time.Duration) (string, string) {
	var total counts
	byKind := map[string]*counts{}
	for _, m := range sel {
		total.add(m)
		if byKind[m.Kind] == nil {
			byKind[m.Kind] = &counts{}
		}
		byKind[m.Kind].add(m)
	}
	var b strings.Builder
	summary := fmt.Sprintf("%s (%s): %s [%s]", pkg, lp.ImportPath, total, wall.Round(time.Second))
	fmt.Fprintf(&b, "== mutation report for %s (%s)\n", pkg, lp.ImportPath)
	fmt.Fprintf(&b, "generated %s; commit %s; -delete=%s; go test -count=1 -failfast -vet=off -timeout=%s; kill after %s; -j %d\n",
		time.Now().Format(time.RFC3339), gitHead(lp.Dir), *flagDelete, *flagTimeout, *flagKill, *flagJ)
	if len(sel) != len(all) {
		fmt.Fprintf(&b, "selection: %d of the %d mutants (-files=%q -match=%q -kinds=%q -id=%q)\n", len(sel), len(all), *flagFiles, *flagMatch, *flagKinds, *flagID)
	}
	if resumeNote != "" {
		fmt.Fprintf(&b, "%s\n", resumeNote)
	}
	fmt.Fprintf(&b, "summary: %s\n", summary)
	for _, k := range []string{"cmp", "logic", "check", "errnil"} {
		if c := byKind[k]; c != nil {
			fmt.Fprintf(&b, "  %-6s %s\n", k, c)
		}
	}
	section := func(title, status string, withReason bool) {
		var ms []*Mutant
		for _, m := range sel {
			if m.Status == status {
				ms = append(ms, m)
			}
		}
		if len(ms) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n== %s (%d)\n", title, len(ms))
		file := ""
		for _, m := range ms {
			if m.File != file {
				file = m.File
				fmt.Fprintf(&b, "-- %s\n", file)
			}
			fmt.Fprintf(&b, "%s %s: %s → %s  (#%d)\n", m.site(), m.Kind, m.Orig, m.Mut, m.ID)
			fmt.Fprintf(&b, "    | %s\n", m.Snippet)
			if withReason && m.Reason != "" {
				fmt.Fprintf(&b, "    ! %s\n", m.Reason)
			}
		}
	}
	section("survivors", "survived", false)
	section("did not build", "notbuilt", true)
	section("errors (not counted)", "error", true)
	return b.String(), summary
}

func gitHead(dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}
