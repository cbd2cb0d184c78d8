package agent_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/poll"
)

// targetAs starts a process with the given IDs in the test's own mount
// namespace (so paths the test creates are the target's paths) and connects
// a client to an agent serving it.
func targetAs(t *testing.T, uid, gid uint32, groups ...uint32) *agentclient.Client {
	t.Helper()
	cmd := exec.Command("cat")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups},
		Pdeathsig:  syscall.SIGKILL,
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	pod := &localenv.Pod{Name: fmt.Sprintf("uid%d", uid), PID: cmd.Process.Pid}
	return connect(t, startAgent(t, pod, agentOptions{}).addr, "alice@laptop")
}

// tree builds files from a list of (path, mode, content) under a fresh
// directory owned by root and returns it. A mode with S_IFDIR makes a
// directory, S_IFLNK a symlink to content, S_IFIFO a FIFO, S_IFCHR the
// character device content ("major:minor").
func tree(t *testing.T, entries ...entry) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "remocal-judged")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.path)
		perm := e.mode & 0o7777
		switch e.mode & unix.S_IFMT {
		case unix.S_IFDIR:
			err = os.Mkdir(p, 0o700)
		case unix.S_IFLNK:
			err = os.Symlink(e.content, p)
		case unix.S_IFIFO:
			err = unix.Mkfifo(p, 0o600)
		case unix.S_IFCHR:
			var major, minor uint32
			fmt.Sscanf(e.content, "%d:%d", &major, &minor)
			err = unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(major, minor)))
		default:
			err = os.WriteFile(p, []byte(e.content), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.mode&unix.S_IFMT != unix.S_IFLNK {
			if err := os.Chmod(p, os.FileMode(perm)); err != nil {
				t.Fatal(err)
			}
		}
		if e.gid != 0 {
			if err := os.Lchown(p, 0, int(e.gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

type entry struct {
	path    string
	mode    uint32
	content string
	gid     uint32
}

// lockedTree: a world-readable file, a symlink and a world-readable
// directory inside a directory only root may search, and the same beside it
// in an open directory.
func lockedTree(t *testing.T) string {
	return tree(t,
		entry{path: "locked", mode: unix.S_IFDIR | 0o700},
		entry{path: "locked/file", mode: 0o644, content: "behind a locked door"},
		entry{path: "locked/link", mode: unix.S_IFLNK, content: "file"},
		entry{path: "locked/sub", mode: unix.S_IFDIR | 0o755},
		entry{path: "locked/sub/inner", mode: 0o644, content: "inner"},
		entry{path: "open", mode: unix.S_IFDIR | 0o755},
		entry{path: "open/file", mode: 0o644, content: "public"},
		entry{path: "open/link", mode: unix.S_IFLNK, content: "file"},
		entry{path: "open/sneaky", mode: unix.S_IFLNK, content: "../locked/file"},
	)
}

func wantEACCES(t *testing.T, what string, err error) {
	t.Helper()
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodePermissionDenied || we.Errno != int(unix.EACCES) {
		t.Errorf("%s: want permission_denied with EACCES, got %v", what, err)
		return
	}
	if !strings.Contains(we.Message, "uid 1000") {
		t.Errorf("%s: the error should name the target's uid: %v", what, err)
	}
}

// A uid-1000 target cannot search a 0700 root directory, so it can neither
// read, stat, readlink nor list anything below it, however open the modes
// down there are. Neither can a client of its agent.
func TestNonRootTargetCannotReachBelowALockedDirectory(t *testing.T) {
	dir := lockedTree(t)
	c := targetAs(t, 1000, 1000)
	ctx := testCtx(t)
	locked := dir + "/locked"

	_, err := c.ReadFile(ctx, locked+"/file")
	wantEACCES(t, "read of a 0644 file under a 0700 root directory", err)
	_, err = c.ReadFile(ctx, dir+"/open/sneaky")
	wantEACCES(t, "read through a symlink into the 0700 directory", err)
	_, err = c.Stat(ctx, locked+"/file")
	wantEACCES(t, "stat under the 0700 directory", err)
	_, err = c.Lstat(ctx, locked+"/link")
	wantEACCES(t, "lstat under the 0700 directory", err)
	_, err = c.Readlink(ctx, locked+"/link")
	wantEACCES(t, "readlink under the 0700 directory", err)
	_, err = c.ReadDir(ctx, locked+"/sub")
	wantEACCES(t, "readdir of a 0755 directory under the 0700 directory", err)
	_, err = c.ReadDir(ctx, locked)
	wantEACCES(t, "readdir of the 0700 directory", err)
	err = c.Access(ctx, locked+"/file", 0)
	wantEACCES(t, "access(F_OK) under the 0700 directory", err)
	err = c.Access(ctx, locked+"/file", unix.R_OK)
	wantEACCES(t, "access(R_OK) under the 0700 directory", err)

	// What the target may reach still works.
	if b, err := c.ReadFile(ctx, dir+"/open/file"); err != nil || string(b) != "public" {
		t.Errorf("read of a readable file: %q, %v", b, err)
	}
	if b, err := c.ReadFile(ctx, dir+"/open/link"); err != nil || string(b) != "public" {
		t.Errorf("read through a readable symlink: %q, %v", b, err)
	}
	if st, err := c.Stat(ctx, dir+"/open/file"); err != nil || st.Size != int64(len("public")) {
		t.Errorf("stat of a readable file: %+v, %v", st, err)
	}
	if st, err := c.Stat(ctx, locked); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("stat of the 0700 directory itself (its parent is searchable): %+v, %v", st, err)
	}
	if l, err := c.Readlink(ctx, dir+"/open/link"); err != nil || l != "file" {
		t.Errorf("readlink of a reachable symlink: %q, %v", l, err)
	}
	if entries, err := c.ReadDir(ctx, dir+"/open"); err != nil || len(entries) != 3 {
		t.Errorf("readdir of a readable directory: %v, %v", entries, err)
	}
	if err := c.Access(ctx, dir+"/open/file", unix.R_OK); err != nil {
		t.Errorf("access(R_OK) of a readable file: %v", err)
	}
	if err := c.Access(ctx, dir+"/open/file", unix.W_OK); wire.CodeOf(err) != wire.CodePermissionDenied {
		t.Errorf("access(W_OK) of root's 0644 file for uid 1000: want permission_denied, got %v", err)
	}
}

// A root target reaches everything, as before.
func TestRootTargetReachesBelowALockedDirectory(t *testing.T) {
	dir := lockedTree(t)
	c := targetAs(t, 0, 0)
	ctx := testCtx(t)
	locked := dir + "/locked"

	if b, err := c.ReadFile(ctx, locked+"/file"); err != nil || string(b) != "behind a locked door" {
		t.Errorf("read: %q, %v", b, err)
	}
	if b, err := c.ReadFile(ctx, dir+"/open/sneaky"); err != nil || string(b) != "behind a locked door" {
		t.Errorf("read through a symlink: %q, %v", b, err)
	}
	if _, err := c.Stat(ctx, locked+"/file"); err != nil {
		t.Errorf("stat: %v", err)
	}
	if l, err := c.Readlink(ctx, locked+"/link"); err != nil || l != "file" {
		t.Errorf("readlink: %q, %v", l, err)
	}
	if entries, err := c.ReadDir(ctx, locked+"/sub"); err != nil || len(entries) != 1 {
		t.Errorf("readdir: %v, %v", entries, err)
	}
	if err := c.Access(ctx, locked+"/file", unix.R_OK|unix.W_OK); err != nil {
		t.Errorf("access(R_OK|W_OK): %v", err)
	}
}

// Group permissions follow the target's primary and supplementary groups.
func TestNonRootTargetReadsThroughItsGroups(t *testing.T) {
	dir := tree(t,
		entry{path: "staff", mode: unix.S_IFDIR | 0o750, gid: 2000},
		entry{path: "staff/notes", mode: 0o640, content: "for staff", gid: 2000},
		entry{path: "own", mode: 0o640, content: "for group 1000", gid: 1000},
	)
	ctx := testCtx(t)

	member := targetAs(t, 1000, 1000, 2000)
	if b, err := member.ReadFile(ctx, dir+"/staff/notes"); err != nil || string(b) != "for staff" {
		t.Errorf("supplementary group member: %q, %v", b, err)
	}
	if b, err := member.ReadFile(ctx, dir+"/own"); err != nil || string(b) != "for group 1000" {
		t.Errorf("primary group: %q, %v", b, err)
	}
	outsider := targetAs(t, 1000, 1000)
	_, err := outsider.ReadFile(ctx, dir+"/staff/notes")
	wantEACCES(t, "read by a uid outside the group", err)
	if b, err := outsider.ReadFile(ctx, dir+"/own"); err != nil || string(b) != "for group 1000" {
		t.Errorf("primary group without supplementary groups: %q, %v", b, err)
	}
}

// watchOpens reports every open and close of path, as the kernel records
// them; an O_PATH handle is neither.
func watchOpens(t *testing.T, path string) func() []uint32 {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_OPEN|unix.IN_ACCESS|unix.IN_CLOSE_WRITE|unix.IN_CLOSE_NOWRITE); err != nil {
		t.Fatal(err)
	}
	return func() []uint32 {
		var masks []uint32
		buf := make([]byte, 4096)
		for {
			n, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EAGAIN) {
				return masks
			}
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				masks = append(masks, ev.Mask)
				off += unix.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}
}

// A FIFO in the target's tree is refused without being opened: opening it
// for reading would complete the open of a writer waiting on it, whose data
// would then be lost.
func TestFIFOIsRefusedWithoutBeingOpened(t *testing.T) {
	dir := tree(t, entry{path: "fifo", mode: unix.S_IFIFO | 0o666})
	fifo := dir + "/fifo"
	events := watchOpens(t, fifo)
	// The writer waits in open until a reader comes.
	writer := exec.Command("sh", "-c", `echo for-the-real-reader > "$0"`, fifo)
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Process.Kill(); writer.Wait() })
	c := targetAs(t, 1000, 1000)
	ctx := testCtx(t)
	// Until the writer waits in the FIFO's open, a reader's open would
	// not be the one completing it: the test's own read at the end would
	// find no writer yet and read nothing.
	wchan := fmt.Sprintf("/proc/%d/wchan", writer.Process.Pid)
	if err := poll.Until(ctx, 10*time.Second, func() error {
		if b, err := os.ReadFile(wchan); err != nil || string(b) != "wait_for_partner" {
			return fmt.Errorf("the writer is not waiting in the FIFO's open yet (%s: %q, %v)", wchan, b, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	_, err := c.ReadFile(ctx, fifo)
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeUnsupported || we.Errno != int(unix.EINVAL) {
		t.Errorf("read of a FIFO: want unsupported with EINVAL, got %v", err)
	}
	if st, err := c.Stat(ctx, fifo); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("stat of a FIFO: %+v, %v", st, err)
	}
	if _, err := c.ReadDir(ctx, fifo); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("readdir of a FIFO: want ENOTDIR, got %v", err)
	}
	if err := c.Access(ctx, fifo, unix.R_OK); err != nil {
		t.Errorf("access(R_OK) of a 0666 FIFO: %v", err)
	}
	if got := events(); len(got) != 0 {
		t.Errorf("the agent opened the FIFO (inotify events %#x); it must refuse it by its type first", got)
	}

	// The writer still waits, and its data reaches the first real reader.
	fd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := os.NewFile(uintptr(fd), fifo)
	defer r.Close()
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	data, err := io.ReadAll(r)
	if err != nil || string(data) != "for-the-real-reader\n" {
		t.Errorf("the waiting writer's data = %q, %v; its open was completed by someone else", data, err)
	}
	if got := events(); len(got) == 0 || got[0]&unix.IN_OPEN == 0 {
		t.Errorf("the test's own open was not seen (events %#x): the watch proves nothing", got)
	}
}

// A device node is refused by its type without being opened: opening a
// device can act on it (a tape rewinds, a modem hangs up).
func TestDeviceIsRefusedWithoutBeingOpened(t *testing.T) {
	for _, uid := range []uint32{0, 1000} {
		t.Run(fmt.Sprintf("uid %d", uid), func(t *testing.T) {
			dir := tree(t, entry{path: "null", mode: unix.S_IFCHR | 0o666, content: "1:3"})
			dev := dir + "/null"
			events := watchOpens(t, dev)
			c := targetAs(t, uid, uid)
			ctx := testCtx(t)

			_, err := c.ReadFile(ctx, dev)
			var we *wire.Error
			if !errors.As(err, &we) || we.Code != wire.CodeUnsupported || we.Errno != int(unix.EINVAL) {
				t.Errorf("read of a device: want unsupported with EINVAL, got %v", err)
			}
			if st, err := c.Stat(ctx, dev); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
				t.Errorf("stat of a device: %+v, %v", st, err)
			}
			if got := events(); len(got) != 0 {
				t.Errorf("the agent opened the device (inotify events %#x); it must refuse it by its type first", got)
			}
			f, err := os.Open(dev)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			if got := events(); len(got) == 0 || got[0]&unix.IN_OPEN == 0 {
				t.Errorf("the test's own open was not seen (events %#x): the watch proves nothing", got)
			}
		})
	}
}
