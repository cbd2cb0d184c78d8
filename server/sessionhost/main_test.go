package sessionhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/interpose/session"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/procwatch"
	"github.com/remocal/remocal/test/syncbuf"
)

// The tests start real session hosts (the remocal binary built from this
// module) against the local "remote" environment of internal/localenv, and run
// real programs that join them, as an IDE would: with Ready.Env (the
// LD_PRELOAD bootstrap) or through `remocal exec --join`. Everything runs in
// localenv's loopback-only network namespace.
func TestMain(m *testing.M) {
	envtest.Main(m, gobuild.Cleanup)
}

// built returns "remocal" as `make build` builds it (dynamically linked when
// cgo is available, so the bootstrap library loads into the --join wrapper
// too), or "probe", the static Go program of test/e2e.
func built(t testing.TB, name string) string {
	t.Helper()
	if name == "probe" {
		return gobuild.Program(t, gobuild.Probe, gobuild.Options{Static: true})
	}
	return gobuild.Program(t, gobuild.Remocal, gobuild.Options{})
}

// recorder keeps the events a host reported and lets tests wait for one.
type recorder struct {
	mu     sync.Mutex
	events []Event
	more   chan struct{}
}

func newRecorder() *recorder { return &recorder{more: make(chan struct{})} }

func (r *recorder) add(ev Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	close(r.more)
	r.more = make(chan struct{})
	r.mu.Unlock()
}

// wait returns the first event of kind, waiting up to 30s for it.
func (r *recorder) wait(t *testing.T, kind daemon.EventKind) Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		for _, ev := range r.events {
			if ev.Kind == kind {
				r.mu.Unlock()
				return ev
			}
		}
		more := r.more
		r.mu.Unlock()
		select {
		case <-more:
		case <-timeout:
			t.Fatalf("no %q event within 30s; got %+v", kind, r.all())
		}
	}
}

func (r *recorder) all() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// testHost is a host started for a test, stopped when it ends.
type testHost struct {
	*Host
	spec   Spec
	events *recorder
	log    *syncbuf.Buffer
}

// appSpec is a session on the app pod whose config directory is remote.
func appSpec(t *testing.T, env *localenv.Env, id string) Spec {
	dir := t.TempDir()
	return Spec{
		ID: id, Target: fmt.Sprintf("pid/%d", env.App.PID), WorkDir: t.TempDir(), ClientName: "sessionhost-test",
		Socket:  filepath.Join(dir, id+".sock"),
		Config:  &config.Config{FS: config.FS{Remote: []string{"/etc/inventory"}}},
		Version: "test", LibraryDir: filepath.Join(dir, "lib"),
	}
}

func startHost(t *testing.T, spec Spec) *testHost {
	t.Helper()
	th := &testHost{spec: spec, events: newRecorder(), log: &syncbuf.Buffer{}}
	th.spec.Log = th.log.Line
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := Start(ctx, built(t, "remocal"), th.spec, th.events.add)
	if err != nil {
		t.Fatalf("start the session host: %v\nits output:\n%s", err, th.log)
	}
	th.Host = h
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.Stop(ctx); err != nil {
			t.Errorf("stop %s: %v", spec.ID, err)
		}
		t.Logf("session host %s (pid %d) output:\n%s", spec.ID, h.PID(), th.log)
	})
	return th
}

// detail asks the host for its details.
func (th *testHost) detail(t *testing.T) Detail {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := th.Detail(ctx)
	if err != nil {
		t.Fatalf("detail: %v", err)
	}
	t.Logf("detail of %s: %+v", th.spec.ID, d)
	return d
}

// programEnv is the test's environment without anything of remocal's, plus
// Ready.Env: what an IDE gives a program it launches in the session.
func programEnv(r Ready) []string {
	vars := map[string]string{}
	var order []string
	add := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if k == "LD_PRELOAD" || k == session.SocketEnv || k == "REMOCAL_BOOTSTRAP_WARNED" {
			continue
		}
		add(k, v)
	}
	for k, v := range r.Env {
		add(k, v)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vars[k])
	}
	return out
}

// joinArgv is the wrapper the daemon hands IDEs for static programs.
func joinArgv(t *testing.T, socket string, flags []string, argv ...string) []string {
	out := append([]string{built(t, "remocal"), "exec", "--join", socket}, flags...)
	return append(append(out, "--"), argv...)
}

// run runs argv with env in a directory of its own and waits.
func run(t *testing.T, env []string, argv ...string) procwatch.Result {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = env, t.TempDir()
	return procwatch.Run(t, cmd)
}

// start runs argv with env in a directory of its own, its output read
// line by line (procwatch).
func start(t *testing.T, env []string, argv ...string) *procwatch.Proc {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = env, t.TempDir()
	return procwatch.Start(t, cmd)
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// children lists the processes whose parent is pid.
func children(pid int) map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
			out[p] = strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")
		}
	}
	return out
}

// watchExit returns a channel closed when process pid exits (pidfd), or nil
// if it is gone already. The watch ends with the test.
func watchExit(t *testing.T, pid int) <-chan struct{} {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	ch := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(stop), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err == nil && fds[0].Revents != 0 {
				close(ch)
			}
			return
		}
	}()
	t.Cleanup(func() {
		unix.Write(stop, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		<-ended
		unix.Close(fd)
		unix.Close(stop)
	})
	return ch
}

// waitExit waits for the processes of watchExit to exit.
func waitExit(t *testing.T, what string, pids map[int]string, chans map[int]<-chan struct{}) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for pid, ch := range chans {
		if _, ok := pids[pid]; !ok || ch == nil {
			continue // not one this wait is about
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("%s: process %d (%s) still runs", what, pid, pids[pid])
		}
	}
}
