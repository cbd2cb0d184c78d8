package target

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("switching a thread's credentials needs root")
	}
}

// threadStatus returns the Uid, Gid, Groups and CapEff lines of a thread.
func threadStatus(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func effective(t *testing.T, status map[string]string, c int) bool {
	t.Helper()
	var eff uint64
	if _, err := fmt.Sscanf(status["CapEff"], "%x", &eff); err != nil {
		t.Fatalf("CapEff %q: %v", status["CapEff"], err)
	}
	return eff&(1<<c) != 0
}

// The kernel itself drops the capabilities that bypass file permissions from
// a thread whose fsuid goes from 0 to another, and gives them back when it
// returns to 0 (capabilities(7)); As relies on it and drops them again.
// This measures it on the running kernel.
func TestFsuidDropsFileCapabilitiesOnThisKernel(t *testing.T) {
	requireRoot(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		before := threadStatus(t, "/proc/thread-self/status")
		unix.RawSyscall(unix.SYS_SETFSUID, 1000, 0, 0)
		after := threadStatus(t, "/proc/thread-self/status")
		unix.RawSyscall(unix.SYS_SETFSUID, 0, 0, 0)
		back := threadStatus(t, "/proc/thread-self/status")
		for _, c := range fsCaps {
			if !effective(t, before, c) {
				t.Errorf("capability %d not effective to begin with (CapEff %s)", c, before["CapEff"])
			}
			if effective(t, after, c) {
				t.Errorf("capability %d still effective with fsuid 1000 (CapEff %s)", c, after["CapEff"])
			}
			if !effective(t, back, c) {
				t.Errorf("capability %d not effective again with fsuid 0 (CapEff %s)", c, back["CapEff"])
			}
		}
		t.Logf("CapEff: fsuid 0 %s, fsuid 1000 %s, fsuid 0 again %s", before["CapEff"], after["CapEff"], back["CapEff"])
	}()
	<-done
}

func TestAsJudgesAsTheIDs(t *testing.T) {
	requireRoot(t)
	dir, err := os.MkdirTemp("", "remocal-as") // 0700 under t.TempDir would hide it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	for name, gid := range map[string]int{"root-only": 0, "group-2000": 2000} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 0, gid); err != nil {
			t.Fatal(err)
		}
	}
	read := func(ids IDs, name string) (status map[string]string, err error) {
		if aerr := As(ids, func() {
			status = threadStatus(t, "/proc/thread-self/status")
			var b []byte
			b, err = os.ReadFile(filepath.Join(dir, name))
			if err == nil && string(b) != name {
				err = fmt.Errorf("read %q", b)
			}
		}); aerr != nil {
			t.Fatal(aerr)
		}
		return status, err
	}

	st, err := read(IDs{UID: 1000, GID: 1000}, "root-only")
	if !os.IsPermission(err) {
		t.Errorf("uid 1000 read a 0640 root file: %v", err)
	}
	if f := strings.Fields(st["Uid"]); len(f) != 4 || f[3] != "1000" {
		t.Errorf("Uid inside As = %q, want fsuid 1000", st["Uid"])
	}
	if f := strings.Fields(st["Gid"]); len(f) != 4 || f[3] != "1000" {
		t.Errorf("Gid inside As = %q, want fsgid 1000", st["Gid"])
	}
	for _, c := range fsCaps {
		if effective(t, st, c) {
			t.Errorf("capability %d effective inside As (CapEff %s)", c, st["CapEff"])
		}
	}
	if _, err := read(IDs{UID: 1000, GID: 1000}, "group-2000"); !os.IsPermission(err) {
		t.Errorf("uid 1000 outside group 2000 read its 0640 file: %v", err)
	}
	st, err = read(IDs{UID: 1000, GID: 1000, Groups: []uint32{2000, 3000}}, "group-2000")
	if err != nil {
		t.Errorf("uid 1000 in group 2000: %v", err)
	}
	if st["Groups"] != "2000 3000" {
		t.Errorf("Groups inside As = %q", st["Groups"])
	}
	if _, err := read(IDs{UID: 2000, GID: 2000}, "group-2000"); err != nil {
		t.Errorf("fsgid 2000: %v", err)
	}
	if _, err := read(IDs{}, "root-only"); err != nil {
		t.Errorf("uid 0: %v", err)
	}
}

// No thread keeps a target's credentials after As: every thread of the
// process has the process's own IDs, groups and capabilities.
func TestAsLeavesNoThreadSwitched(t *testing.T) {
	requireRoot(t)
	own := threadStatus(t, "/proc/self/status")
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			As(IDs{UID: uint32(1000 + i%3), GID: 1000, Groups: []uint32{uint32(i)}}, func() { runtime.Gosched() })
		}()
	}
	wg.Wait()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		st := threadStatus(t, "/proc/self/task/"+task.Name()+"/status")
		for _, k := range []string{"Uid", "Gid", "Groups", "CapEff"} {
			if st[k] != own[k] {
				t.Errorf("thread %s has %s %q, the process %q", task.Name(), k, st[k], own[k])
			}
		}
	}
}

func TestParseCredentials(t *testing.T) {
	c, err := parseCredentials("Name:\tx\nUid:\t1000\t1001\t1002\t1003\nGid:\t2000\t2001\t2002\t2003\nGroups:\t4 24 2000 \n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Real().UID != 1000 || c.Real().GID != 2000 || c.FS().UID != 1003 || c.FS().GID != 2003 || !slices.Equal(c.Groups, []uint32{4, 24, 2000}) {
		t.Errorf("parsed %+v", c)
	}
	for _, bad := range []string{
		"Uid:\t1000\t1000\t1000\t1000\n",                   // no Gid: never assume root
		"Uid:\tx\t0\t0\t0\nGid:\t0\t0\t0\t0\n",             // unparsable
		"Uid:\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n", // short
		"Uid:\t1\t1\t1\t1\nGid:\t1\t1\t1\t1\nGroups:\t1 y\n",
	} {
		if c, err := parseCredentials(bad); err == nil {
			t.Errorf("%q parsed as %+v", bad, c)
		}
	}
}

// The cost As adds to a file request of a non-root target, against the
// same request made as root (As runs it directly) in the same run: a stat
// of a file, the cheapest request the agent serves.
func BenchmarkAs(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("switching a thread's credentials needs root")
	}
	dir := b.TempDir()
	// Searchable by uid 1000, as the target's files would be.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		ids  IDs
	}{
		{"root", IDs{}},
		{"uid-1000", IDs{UID: 1000, GID: 1000, Groups: []uint32{1000, 50}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var st unix.Stat_t
			for b.Loop() {
				var serr error
				if err := As(bc.ids, func() { serr = unix.Stat(path, &st) }); err != nil || serr != nil {
					b.Fatal(err, serr)
				}
			}
		})
	}
}
