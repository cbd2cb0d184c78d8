package supervisor

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/remocal/remocal/interpose/internal/rules"
)

// otherThread returns a thread of this process other than its main one:
// the Go runtime always runs several.
func otherThread(t *testing.T) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tasks {
		if tid, err := strconv.Atoi(e.Name()); err == nil && tid != os.Getpid() {
			return tid
		}
	}
	t.Fatal("this process has a single thread")
	return 0
}

// noSuchTID names no thread: above any pid_max.
const noSuchTID = 1<<31 - 1

// absPath reads the caller's working directory and descriptors from /proc;
// this process stands in for the caller.
func TestAbsPath(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f, err := os.CreateTemp(dir, "file")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	pipeR, pipeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pipeR.Close()
	defer pipeW.Close()
	self := os.Getpid()
	for _, tc := range []struct {
		name  string
		tid   int
		dirfd int32
		path  string
		want  string
		ok    bool
	}{
		{"absolute", self, atFdcwd, "/etc/hosts", "/etc/hosts", true},
		{"absolute is cleaned", self, atFdcwd, "/etc/../etc//ssl/./certs/", "/etc/ssl/certs", true},
		{"absolute ignores dirfd", self, int32(d.Fd()), "/etc/hosts", "/etc/hosts", true},
		{"absolute needs no caller", noSuchTID, atFdcwd, "/etc/hosts", "/etc/hosts", true},
		{"relative to the working directory", self, atFdcwd, "config/app.yaml", filepath.Join(cwd, "config/app.yaml"), true},
		{"dot dot", self, atFdcwd, "../x", filepath.Join(filepath.Dir(cwd), "x"), true},
		{"relative to a directory fd", self, int32(d.Fd()), "sub/f", filepath.Join(dir, "sub/f"), true},
		// A pipe's link is "pipe:[N]", not a path to resolve against.
		{"relative to a pipe", self, int32(pipeR.Fd()), "x", "", false},
		{"relative to a closed fd", self, 1 << 20, "x", "", false},
		{"caller gone", noSuchTID, atFdcwd, "x", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := absPath(tc.tid, tc.dirfd, tc.path)
			if got != tc.want || ok != tc.ok {
				t.Errorf("absPath(%d, %d, %q) = %q, %v; want %q, %v", tc.tid, tc.dirfd, tc.path, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// processIsLocal: build tools and debuggers by executable name, and the
// transparent process with all of its threads (but not its children).
func TestProcessIsLocal(t *testing.T) {
	self, thread := os.Getpid(), otherThread(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		tid  int
		want bool
	}{
		{"no rules", Config{}, self, false},
		{"not a local program", Config{Processes: rules.NewProcesses(nil)}, self, false},
		{"local program by name", Config{Processes: rules.NewProcesses([]string{filepath.Base(exe)})}, self, true},
		{"local program, another thread", Config{Processes: rules.NewProcesses([]string{filepath.Base(exe)})}, thread, true},
		{"transparent process", Config{TransparentPID: self}, self, true},
		{"thread of the transparent process", Config{TransparentPID: self}, thread, true},
		{"another process than the transparent one", Config{TransparentPID: os.Getppid()}, self, false},
		{"gone", Config{Processes: rules.NewProcesses([]string{filepath.Base(exe)}), TransparentPID: self}, noSuchTID, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Supervisor{cfg: tc.cfg}
			if got := s.processIsLocal(tc.tid); got != tc.want {
				t.Errorf("processIsLocal(%d) = %v, want %v", tc.tid, got, tc.want)
			}
			if got := s.procs[tc.tid]; got.local != tc.want {
				t.Errorf("remembered %+v, want local %v", got, tc.want)
			}
		})
	}
}

// The decision is remembered until the thread execs.
func TestProcessIsLocalRemembers(t *testing.T) {
	self := os.Getpid()
	s := &Supervisor{cfg: Config{TransparentPID: self}}
	if !s.processIsLocal(self) {
		t.Fatal("the transparent process is not local")
	}
	s.cfg.TransparentPID = 0
	if !s.processIsLocal(self) {
		t.Error("the decision was not remembered")
	}
	s.forgetProcess(self)
	if s.processIsLocal(self) {
		t.Error("forgetProcess did not drop the decision")
	}
}

// Processes groups threads by process and forgets threads that are gone.
func TestProcesses(t *testing.T) {
	self, thread := os.Getpid(), otherThread(t)
	exe, _ := os.Readlink("/proc/self/exe")
	for _, tc := range []struct {
		name      string
		procs     map[int]procInfo
		want      []ProcessInfo
		remaining []int
	}{
		{"none", nil, []ProcessInfo{}, nil},
		{"one thread", map[int]procInfo{self: {}}, []ProcessInfo{{PID: self, Exe: exe}}, []int{self}},
		{"local if any thread is", map[int]procInfo{self: {}, thread: {local: true}},
			[]ProcessInfo{{PID: self, Exe: exe, Local: true}}, []int{self, thread}},
		{"gone thread forgotten", map[int]procInfo{self: {}, noSuchTID: {local: true}},
			[]ProcessInfo{{PID: self, Exe: exe}}, []int{self}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Supervisor{procs: tc.procs}
			if diff := cmp.Diff(tc.want, s.Processes()); diff != "" {
				t.Errorf("Processes (-want +got):\n%s", diff)
			}
			var remaining []int
			for tid := range s.procs {
				remaining = append(remaining, tid)
			}
			if diff := cmp.Diff(tc.remaining, remaining, cmpSortInts); diff != "" {
				t.Errorf("threads remembered (-want +got):\n%s", diff)
			}
		})
	}
}

// threadStartTime reads field 22 of /proc/TID/stat, whatever the command
// name holds.
func TestThreadStartTime(t *testing.T) {
	got, err := threadStartTime(os.Getpid())
	if err != nil || got == 0 {
		t.Fatalf("threadStartTime(self) = %d, %v", got, err)
	}
	if _, err := threadStartTime(noSuchTID); err == nil {
		t.Error("no error for a thread that does not exist")
	}
}

// A remembered local thread whose ID now names another thread (another
// start time) is decided again: a recycled ID must not make the program's
// thread local. A remembered intercepted thread stays intercepted.
func TestProcessIsLocalRecycledTID(t *testing.T) {
	self := os.Getpid()
	for _, tc := range []struct {
		name         string
		remembered   procInfo
		start        uint64
		startErr     error
		transparent  int
		want         bool
		wantRemember procInfo
	}{
		{"local, same thread", procInfo{local: true, start: 100}, 100, nil, 0, true, procInfo{local: true, start: 100}},
		{"local, recycled ID", procInfo{local: true, start: 100}, 200, nil, 0, false, procInfo{start: 200}},
		{"local, recycled ID, local again", procInfo{local: true, start: 100}, 200, nil, self, true, procInfo{local: true, start: 200}},
		{"local, start time unknown", procInfo{local: true, start: 100}, 0, os.ErrNotExist, 0, false, procInfo{}},
		{"local, remembered without start time", procInfo{local: true}, 0, os.ErrNotExist, 0, false, procInfo{}},
		{"intercepted", procInfo{start: 100}, 200, nil, self, false, procInfo{start: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Supervisor{cfg: Config{TransparentPID: tc.transparent}, procs: map[int]procInfo{self: tc.remembered},
				startTime: func(int) (uint64, error) { return tc.start, tc.startErr }}
			if got := s.processIsLocal(self); got != tc.want {
				t.Errorf("processIsLocal = %v, want %v", got, tc.want)
			}
			if got := s.procs[self]; got != tc.wantRemember {
				t.Errorf("remembered %+v, want %+v", got, tc.wantRemember)
			}
		})
	}
}
