package netns_test

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/internal/netns"
	"github.com/remocal/remocal/test/envtest"
)

func TestMain(m *testing.M) { envtest.Main(m) }

func currentNetNS(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestDoEntersAndLeaves(t *testing.T) {
	env := envtest.New(t)
	ns, err := env.App.NS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	want, err := ns.ID()
	if err != nil {
		t.Fatal(err)
	}
	var inside uint64
	if err := ns.Do(func() error { inside = currentNetNS(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if inside != want {
		t.Errorf("inside Do the thread was in namespace %d, want %d", inside, want)
	}
	// Many calls later, no goroutine of this process is left in the pod's
	// namespace: a leaked thread would show up as this namespace here.
	for range 100 {
		ns.Do(func() error { return nil })
		if currentNetNS(t) == want {
			t.Fatal("a thread stayed in the target namespace after Do")
		}
	}
	boom := errors.New("boom")
	if err := ns.Do(func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Do must return fn's error, got %v", err)
	}
}

func TestSocketsKeepTheirNamespace(t *testing.T) {
	env := envtest.New(t)
	ns, err := env.Peer.NS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	ctx := context.Background()
	l, err := ns.Listen(ctx, "tcp", localenv.PeerIP.String()+":7100")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	// The peer's address exists only in its namespace: dialling from the
	// test's own namespace fails, from inside it works.
	if _, err := net.Dial("tcp", l.Addr().String()); !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("dial from outside: want ENETUNREACH, got %v", err)
	}
	c, err := ns.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err != nil || buf[0] != 'x' {
		t.Fatalf("read %q, %v", buf, err)
	}
	if _, err := ns.DialContext(ctx, "tcp", "redis.example:6379"); err == nil {
		t.Fatal("DialContext must refuse names: they would resolve with this process's resolver")
	}
}

func TestOpenRejectsNonNamespaceFiles(t *testing.T) {
	if _, err := netns.Open("/etc/hostname"); err == nil {
		t.Fatal("Open accepted a regular file")
	}
	if _, err := netns.Open("/nonexistent/ns"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("want ErrNotExist, got %v", err)
	}
}

// A Thread stays in the namespace for every call, and once closed no
// thread of this process is left there.
func TestThreadStaysInside(t *testing.T) {
	env := envtest.New(t)
	ns, err := env.App.NS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	want, _ := ns.ID()
	th, err := ns.Thread()
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		var inside uint64
		th.Do(func() error { inside = currentNetNS(t); return nil })
		if inside != want {
			t.Fatalf("the thread was in namespace %d, want %d", inside, want)
		}
	}
	// A socket made there reaches the namespace's own addresses.
	var fd int
	if err := th.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	err = unix.Bind(fd, &unix.SockaddrInet4{Addr: localenv.AppIP.As4()})
	unix.Close(fd)
	if err != nil {
		t.Errorf("bind to the app's address from a socket made on the thread: %v", err)
	}
	th.Close()
	th.Close() // twice is harmless
	for range 100 {
		if currentNetNS(t) == want {
			t.Fatal("a thread of this process is in the namespace after Close")
		}
	}
	ns.Close()
	if _, err := ns.Thread(); err == nil {
		t.Error("a thread for a closed namespace must fail")
	}
}
