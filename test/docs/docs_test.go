// Package docs runs the commands the docs tell a newcomer to paste, as
// written, against the test cluster (test/cluster): README.md,
// docs/cluster.md, the Examples of docs/kubernetes.md and
// examples/kubernetes/README.md (the list is docs). A command that
// cannot run inside the suite carries a mark in the Markdown saying why,
// or which test covers it; CONTRIBUTING.md ("Commands in the docs") has
// the rules.
//
// Each doc runs in a checkout of its own: a copy of this working tree
// (tracked and untracked files, not ignored ones) committed into a fresh
// git repository, so that `git describe` (the Makefile's VERSION) works as
// in a clone. Each command runs in bash, one after the other, with the
// environment the earlier ones left (exported variables and the working
// directory), starting from the test's environment without KUBECONFIG.
// Commands that start with `remocal` run on a
// laptop (cluster.LocalSide): a network namespace whose only route leads
// to the apiserver, so whatever they reach of the cluster they reach
// through remocal. The others (make, kubectl) run on this machine as the
// harness itself does.
//
// Afterwards the test deletes the namespaces the doc created (those named
// in the doc that did not exist before), the remocal.local images it
// imported that were not in the cluster before, and kubectl's discovery
// cache of the cluster if there was none.
package docs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/syncbuf"
)

func TestMain(m *testing.M) { cluster.Main(m) }

// Bounds on one command: long enough for a cold `make images`, short
// enough that a hang fails with a message.
const (
	commandTimeout = 10 * time.Minute
	readyTimeout   = 3 * time.Minute // until "...": from start to the text
	stopTimeout    = 30 * time.Second
)

func TestDocCommands(t *testing.T) {
	c := cluster.Require(t)
	root := moduleRoot(t)
	for _, d := range docs {
		t.Run(d.String(), func(t *testing.T) {
			blocks, err := parseDoc(root, d)
			if err != nil {
				t.Fatalf("%v (TestDocBlocksAreRunOrMarked says more)", err)
			}
			var cmds []command
			for _, b := range blocks {
				for _, cmd := range b.cmds {
					switch cmd.how.kind {
					case "not run", "covered":
						t.Logf("%s:%d: `%s`: %s", d.file, cmd.line, cmd.key, describe(cmd.how))
					default:
						cmds = append(cmds, cmd)
					}
				}
			}
			if len(cmds) == 0 {
				return
			}
			s := newSession(t, c, root, d, blocks)
			for _, cmd := range cmds {
				start := time.Now()
				s.run(cmd)
				t.Logf("%s:%d: `%s`: ok in %s", d.file, cmd.line, cmd.key, time.Since(start).Round(100*time.Millisecond))
			}
		})
	}
}

func describe(d directive) string {
	switch d.kind {
	case "covered":
		return "covered by " + d.test + " in " + d.pkg
	case "not run":
		return "not run: " + d.reason
	}
	return d.kind
}

// session is a newcomer's terminal working through one doc.
type session struct {
	t       *testing.T
	c       *cluster.Cluster
	doc     doc
	dir     string // the checkout
	state   string // the shell state file: exports and cd
	env     []string
	laptop  *cluster.LocalSide
	scripts string
}

func newSession(t *testing.T, c *cluster.Cluster, root string, d doc, blocks []block) *session {
	t.Helper()
	s := &session{t: t, c: c, doc: d}
	tmp := t.TempDir()
	s.dir = filepath.Join(tmp, "remocal")
	s.scripts = filepath.Join(tmp, "scripts")
	if err := os.MkdirAll(s.scripts, 0o755); err != nil {
		t.Fatal(err)
	}
	checkout(t, root, s.dir)
	s.state = filepath.Join(tmp, "state.sh")
	if err := os.WriteFile(s.state, []byte(fmt.Sprintf("cd -- %q\n", s.dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.env = userEnv(t)
	keepKubectlCacheClean(t)
	s.laptop = c.LocalSide(t)
	s.cleanupAfter(blocks)
	return s
}

// checkout copies the working tree at root (what git ls-files lists as
// cached or untracked-but-not-ignored, as it is on disk) to dir and commits
// it into a new repository there.
func checkout(t *testing.T, root, dir string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		fi, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the working tree
		} else if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, dst); err != nil {
				t.Fatal(err)
			}
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
				t.Fatal(err)
			}
		}
	}
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=doc-test", "-c", "user.email=doc-test@localhost", "-c", "commit.gpgsign=false"}, args...)...)
		// A fixed date: the same tree is the same commit, hence the same
		// version and agent image tag.
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE=2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2000-01-01T00:00:00Z")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	git("init", "-q")
	git("add", "-A")
	git("commit", "-q", "-m", "doc-test checkout")
}

// userEnv is the test's environment as a newcomer's: no KUBECONFIG and no
// test switches, go on PATH as make deps wants it. HOME stays: remocal
// keeps $HOME local for the program (Go's caches, pyenv live there).
func userEnv(t *testing.T) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "KUBECONFIG" || k == cluster.EnvVar || k == "PWD" || k == "OLDPWD" {
			continue
		}
		env = append(env, kv)
	}
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	gobin := filepath.Join(strings.TrimSpace(string(out)), "bin")
	for i, kv := range env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok && !slices.Contains(filepath.SplitList(p), gobin) {
			env[i] = "PATH=" + gobin + string(filepath.ListSeparator) + p
		}
	}
	return env
}

// keepKubectlCacheClean removes the discovery cache a user's kubectl
// writes below ~/.kube for the cluster's apiserver, if it was not there
// before (make cluster-down removes it too).
func keepKubectlCacheClean(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		return
	}
	kube := filepath.Join(home, ".kube")
	discovery := filepath.Join(kube, "cache", "discovery", fmt.Sprintf("%s_%d", cluster.NodeIP, cluster.APIServerPort))
	_, kubeErr := os.Stat(kube)
	_, discErr := os.Stat(discovery)
	t.Cleanup(func() {
		switch {
		case errors.Is(kubeErr, fs.ErrNotExist):
			os.RemoveAll(kube)
		case errors.Is(discErr, fs.ErrNotExist):
			os.RemoveAll(discovery)
		}
	})
}

// script writes the bash script that runs one command in the session's
// state and saves the state it leaves.
func (s *session) script(cmd command) string {
	s.t.Helper()
	body := fmt.Sprintf(". %q\n%s\n__doc_test_status=$?\n{ export -p; printf 'cd -- %%q\\n' \"$PWD\"; } > %q\nexit $__doc_test_status\n",
		s.state, cmd.text, s.state)
	p := filepath.Join(s.scripts, fmt.Sprintf("line%d.sh", cmd.line))
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// command is bash running cmd, on the laptop for remocal.
func (s *session) command(ctx context.Context, cmd command) *exec.Cmd {
	args := []string{"bash", "--noprofile", "--norc", s.script(cmd)}
	if firstWord(cmd.key) == "remocal" {
		args = append([]string{"ip", "netns", "exec", s.laptop.Name}, args...)
	}
	x := exec.CommandContext(ctx, args[0], args[1:]...)
	x.Env = s.env
	x.Dir = s.dir
	x.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Kill the whole group: bash's children too.
	x.Cancel = func() error { return syscall.Kill(-x.Process.Pid, syscall.SIGKILL) }
	x.WaitDelay = 5 * time.Second
	return x
}

func (s *session) run(cmd command) {
	s.t.Helper()
	where := fmt.Sprintf("%s:%d", s.doc.file, cmd.line)
	if cmd.how.kind == "until" {
		s.runUntil(cmd, where)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	x := s.command(ctx, cmd)
	var out syncbuf.Buffer
	x.Stdout, x.Stderr = &out, &out
	err := x.Run()
	// Nothing a command started outlives it (a terminal would keep
	// background jobs; these docs start none).
	syscall.Kill(-x.Process.Pid, syscall.SIGKILL)
	if ctx.Err() != nil {
		s.t.Fatalf("%s: `%s` did not finish within %s:\n%s", where, cmd.key, commandTimeout, out.String())
	}
	if err != nil {
		s.t.Fatalf("%s: `%s` failed (%v):\n%s", where, cmd.key, err, out.String())
	}
	s.t.Logf("%s: `%s`:\n%s", where, cmd.key, out.String())
	if cmd.how.kind == "prints" && !strings.Contains(out.String(), cmd.how.text) {
		s.t.Fatalf("%s: `%s` did not print %q", where, cmd.key, cmd.how.text)
	}
}

// runUntil starts a command that runs until Ctrl-C (a server), waits
// until its output has the ready text, then does what a terminal's Ctrl-C
// does: SIGINT to its process group. It must then end by itself.
func (s *session) runUntil(cmd command, where string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout+stopTimeout+10*time.Second)
	defer cancel()
	x := s.command(ctx, cmd)
	out := &syncbuf.Buffer{}
	x.Stdout, x.Stderr = out, out
	if err := x.Start(); err != nil {
		s.t.Fatalf("%s: %v", where, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = x.Wait(); close(exited) }()
	defer func() {
		syscall.Kill(-x.Process.Pid, syscall.SIGKILL)
		<-exited // bounded: the kill, and WaitDelay for the output
	}()
	ended := func() bool {
		select {
		case <-exited:
			return true
		default:
			return false
		}
	}
	err := poll.Until(ctx, readyTimeout, func() error {
		if ended() || strings.Contains(out.String(), cmd.how.text) {
			return nil
		}
		return fmt.Errorf("no %q in its output yet", cmd.how.text)
	})
	if ended() {
		s.t.Fatalf("%s: `%s` ended (%v), but should run until Ctrl-C once it printed %q:\n%s", where, cmd.key, exitString(waitErr), cmd.how.text, out.String())
	}
	if err != nil {
		s.t.Fatalf("%s: `%s`: %v:\n%s", where, cmd.key, err, out.String())
	}
	// Ctrl-C. How the program takes it (its exit status) is its own
	// business, as in a terminal; it must end.
	syscall.Kill(-x.Process.Pid, syscall.SIGINT)
	select {
	case <-exited:
		s.t.Logf("%s: `%s`: Ctrl-C once it printed %q; it ended (%s):\n%s", where, cmd.key, cmd.how.text, exitString(waitErr), out.String())
	case <-time.After(stopTimeout):
		s.t.Fatalf("%s: `%s` still running %s after Ctrl-C:\n%s", where, cmd.key, stopTimeout, out.String())
	}
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

var nsArgRE = regexp.MustCompile(`(?:create namespace|create ns|-n|--namespace)[ =]([a-z0-9][a-z0-9-]*)`)

// cleanupAfter removes, once the test ends (failed or not), what the
// doc's commands added to the cluster: namespaces the doc names that did
// not exist before, and remocal.local images that were not there before.
func (s *session) cleanupAfter(blocks []block) {
	t, c := s.t, s.c
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	imagesBefore, err := c.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, b := range blocks {
		for _, cmd := range b.cmds {
			for _, m := range nsArgRE.FindAllStringSubmatch(cmd.key, -1) {
				named[m[1]] = true
			}
		}
	}
	nsBefore := map[string]bool{}
	out, err := c.Kubectl(ctx, "get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range strings.Fields(out) {
		nsBefore[n] = true
	}
	for n := range named {
		if nsBefore[n] {
			t.Fatalf("namespace %s exists already; %s creates it: delete it first (kubectl delete namespace %s)", n, s.doc, n)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		for n := range named {
			if _, err := c.Kubectl(ctx, "get", "namespace", n, "-o", "name"); err != nil {
				continue // never created
			}
			if t.Failed() {
				dump(t, c, n)
			}
			// Waited for: the next run creates it again.
			if _, err := c.Kubectl(ctx, "delete", "namespace", n, "--timeout=3m"); err != nil {
				t.Errorf("deleting namespace %s: %v", n, err)
			}
		}
		after, err := c.Images(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		for _, img := range after {
			if strings.HasPrefix(img, "remocal.local/") && !slices.Contains(imagesBefore, img) {
				if err := c.RemoveImage(ctx, img); err != nil {
					t.Error(err)
				}
			}
		}
	})
}

func dump(t *testing.T, c *cluster.Cluster, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"-n", ns, "get", "pods,svc,jobs", "-o", "wide"},
		{"-n", ns, "get", "events", "--sort-by=.lastTimestamp"},
	} {
		out, err := c.Kubectl(ctx, args...)
		t.Logf("kubectl %s:\n%s%v", strings.Join(args, " "), out, err)
	}
}
