// Command modproxy writes a file-based Go module proxy (GOPROXY=file://DIR)
// holding every module of the workspace at the version it will be released
// with, zipped from the work tree as a tag would publish it. It is the first
// half of .ci/release-check, which then builds a consumer module against the
// proxy with GOWORK=off.
//
// It lives in a module of its own so that golang.org/x/mod, which writes
// module zips exactly as the go command and the public proxy do, never enters
// the library's go.mod; the directory's leading dot keeps it out of `./...`,
// and its go.mod keeps it out of the root module's zip.
//
// It also checks what makes the release resolvable: no module of the
// workspace has a replace or exclude directive; every requirement of one
// workspace module on another names the same version (the release version),
// and go.work replaces exactly that version by the module's directory, so
// that the workspace builds before the tags exist; each nested module's path
// is the root's path followed by its directory, so that the tag
// <dir>/<version> serves it.
//
// Usage (from this directory): GOWORK=off go run . -repo ../.. -out DIR
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/zip"
)

// mod is one module of the workspace.
type mod struct {
	dir  string // slash-separated, relative to the repository; "." for the root
	path string
	file *modfile.File
	data []byte // go.mod as it is on disk (served as <version>.mod)
}

func main() {
	repo := flag.String("repo", "../..", "the repository (holds go.work)")
	out := flag.String("out", "", "directory to write the proxy to (created; must not exist)")
	want := flag.String("version", "", "the release version; empty: the one the nested go.mod files require")
	sums := flag.String("sums", "", "if set, write the go.sum lines of the zipped modules to this file")
	flag.Parse()
	if *out == "" {
		fail(errors.New("-out is required"))
	}
	if err := run(*repo, *out, *want, *sums); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "modproxy:", err)
	os.Exit(1)
}

func run(repo, out, want, sumsFile string) error {
	mods, work, err := readWorkspace(repo)
	if err != nil {
		return err
	}
	version, err := check(mods, work, want)
	if err != nil {
		return err
	}
	files, err := gitFiles(repo)
	if err != nil {
		return err
	}
	if err := os.Mkdir(out, 0o755); err != nil {
		return err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		return err
	}
	fmt.Printf("release version %s: module proxy in %s\n", version, out)
	var sumLines []string
	tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	for _, m := range mods {
		mv := module.Version{Path: m.path, Version: version}
		esc, err := module.EscapePath(m.path)
		if err != nil {
			return err
		}
		vdir := filepath.Join(out, filepath.FromSlash(esc), "@v")
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return err
		}
		base := filepath.Join(vdir, version)
		zfiles := filesUnder(repo, files, m.dir)
		zipName := base + ".zip"
		if err := writeZip(zipName, mv, zfiles); err != nil {
			return err
		}
		for name, data := range map[string][]byte{
			base + ".mod":               m.data,
			base + ".info":              info,
			filepath.Join(vdir, "list"): []byte(version + "\n"),
		} {
			if err := os.WriteFile(name, data, 0o644); err != nil {
				return err
			}
		}
		zh, err := dirhash.HashZip(zipName, dirhash.Hash1)
		if err != nil {
			return err
		}
		mh, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(m.data)), nil
		})
		if err != nil {
			return err
		}
		sumLines = append(sumLines, fmt.Sprintf("%s %s %s", m.path, version, zh),
			fmt.Sprintf("%s %s/go.mod %s", m.path, version, mh))
		cf, _ := zip.CheckFiles(zfiles)
		fmt.Fprintf(tw, "  %s@%s\ttag %s\t%d files\t%s\n", m.path, version, tag(m.dir, version), len(cf.Valid), zh)
	}
	tw.Flush()
	if sumsFile != "" {
		return os.WriteFile(sumsFile, []byte(strings.Join(sumLines, "\n")+"\n"), 0o644)
	}
	return nil
}

func dotSlash(dir string) string {
	if dir == "." {
		return "./"
	}
	return "./" + dir
}

func tag(dir, version string) string {
	if dir == "." {
		return version
	}
	return dir + "/" + version
}

// readWorkspace reads go.work and the go.mod of each module it uses, the root
// module first.
func readWorkspace(repo string) ([]*mod, *modfile.WorkFile, error) {
	name := filepath.Join(repo, "go.work")
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, nil, err
	}
	work, err := modfile.ParseWork(name, data, nil)
	if err != nil {
		return nil, nil, err
	}
	var mods []*mod
	for _, u := range work.Use {
		dir := path.Clean(filepath.ToSlash(u.Path))
		if path.IsAbs(dir) || dir == ".." || strings.HasPrefix(dir, "../") {
			return nil, nil, fmt.Errorf("go.work uses %s, outside the repository", u.Path)
		}
		gomod := filepath.Join(repo, filepath.FromSlash(dir), "go.mod")
		data, err := os.ReadFile(gomod)
		if err != nil {
			return nil, nil, err
		}
		f, err := modfile.Parse(gomod, data, nil) // not ParseLax: it drops replace and exclude
		if err != nil {
			return nil, nil, err
		}
		if f.Module == nil {
			return nil, nil, fmt.Errorf("%s: no module line", gomod)
		}
		mods = append(mods, &mod{dir: dir, path: f.Module.Mod.Path, file: f, data: data})
	}
	sort.Slice(mods, func(i, j int) bool {
		if (mods[i].dir == ".") != (mods[j].dir == ".") {
			return mods[i].dir == "."
		}
		return mods[i].dir < mods[j].dir
	})
	if len(mods) == 0 || mods[0].dir != "." {
		return nil, nil, errors.New("go.work does not use the repository's root module")
	}
	return mods, work, nil
}

// check returns the release version after checking the rules in the
// package comment.
func check(mods []*mod, work *modfile.WorkFile, want string) (string, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	root := mods[0].path
	byPath := map[string]*mod{}
	for _, m := range mods {
		byPath[m.path] = m
		if m.dir != "." && m.path != root+"/"+m.dir {
			bad("%s/go.mod: module %s, want %s (the tag %s would not serve it)", m.dir, m.path, root+"/"+m.dir, tag(m.dir, "vX.Y.Z"))
		}
		for _, r := range m.file.Replace {
			bad("%s/go.mod: replace %s (a published module must carry none: go.work serves development)", m.dir, r.Old.Path)
		}
		for _, x := range m.file.Exclude {
			bad("%s/go.mod: exclude %s", m.dir, x.Mod)
		}
	}
	versions := map[string][]string{} // version -> "dir requires path"
	required := map[string]bool{}     // workspace module paths required by another
	for _, m := range mods {
		for _, r := range m.file.Require {
			if byPath[r.Mod.Path] == nil {
				continue
			}
			required[r.Mod.Path] = true
			versions[r.Mod.Version] = append(versions[r.Mod.Version], m.dir+" requires "+r.Mod.Path)
		}
	}
	version := want
	if version == "" {
		switch len(versions) {
		case 0:
			return "", errors.New("no module of the workspace requires another: give -version")
		case 1:
			for v := range versions {
				version = v
			}
		}
	}
	if version == "" {
		var all []string
		for v, who := range versions {
			all = append(all, fmt.Sprintf("%s (%s)", v, strings.Join(who, ", ")))
		}
		sort.Strings(all)
		bad("the workspace's modules require each other at several versions: %s", strings.Join(all, "; "))
	} else {
		if semver.Canonical(version) != version || module.IsPseudoVersion(version) {
			bad("%s is not a version a tag can carry (canonical semantic version, not a pseudo-version)", version)
		}
		for v, who := range versions {
			if v != version {
				bad("%s: version %s, want %s", strings.Join(who, ", "), v, version)
			}
		}
	}
	// go.work must replace exactly the required versions by the directories.
	replaced := map[string]*modfile.Replace{}
	for _, r := range work.Replace {
		m := byPath[r.Old.Path]
		if m == nil {
			bad("go.work: replace %s, not a module of the workspace", r.Old.Path)
			continue
		}
		replaced[r.Old.Path] = r
		if r.Old.Version != version {
			bad("go.work: replace %s %s, want the release version %s", r.Old.Path, r.Old.Version, version)
		}
		if path.Clean(filepath.ToSlash(r.New.Path)) != m.dir || r.New.Version != "" {
			bad("go.work: replace %s => %s, want %s", r.Old.Path, r.New.Path, dotSlash(m.dir))
		}
	}
	for p := range required {
		if replaced[p] == nil {
			bad("go.work: no `replace %s %s => %s`: the workspace would look the unreleased version up on the module proxy", p, version, dotSlash(byPath[p].dir))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return "", errors.New("the workspace is not ready to release:\n  " + strings.Join(problems, "\n  "))
	}
	return version, nil
}

// gitFiles lists the files a commit of the work tree would hold: tracked
// files that still exist, and untracked files that are not ignored (as
// `git add -A` would take them). Ignored files such as node_modules stay out.
func gitFiles(repo string) ([]string, error) {
	cmd := exec.Command("git", "-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git ls-files: %w", err)
	}
	seen := map[string]bool{}
	var files []string
	for _, f := range strings.Split(string(b), "\x00") {
		if f == "" || seen[f] {
			continue
		}
		seen[f] = true
		if _, err := os.Lstat(filepath.Join(repo, filepath.FromSlash(f))); errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree
		}
		files = append(files, f)
	}
	sort.Strings(files)
	return files, nil
}

// repoFile is a file of the work tree, named relative to its module.
type repoFile struct{ name, file string }

func (f repoFile) Path() string                 { return f.name }
func (f repoFile) Lstat() (os.FileInfo, error)  { return os.Lstat(f.file) }
func (f repoFile) Open() (io.ReadCloser, error) { return os.Open(f.file) }

// filesUnder returns the files under dir, named relative to it; zip.Create
// leaves out those of nested modules (directories with a go.mod).
func filesUnder(repo string, files []string, dir string) []zip.File {
	var out []zip.File
	for _, f := range files {
		name := f
		if dir != "." {
			var ok bool
			if name, ok = strings.CutPrefix(f, dir+"/"); !ok {
				continue
			}
		}
		out = append(out, repoFile{name: name, file: filepath.Join(repo, filepath.FromSlash(f))})
	}
	return out
}

func writeZip(name string, mv module.Version, files []zip.File) error {
	w, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := zip.Create(w, mv, files); err != nil {
		w.Close()
		return fmt.Errorf("%s: %w", mv, err)
	}
	return w.Close()
}
