package seccomp_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/handoff"
	"github.com/remocal/remocal/interpose/internal/seccomp"
)

const helperEnv = "REMOCAL_SECCOMP_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helper())
	}
	os.Exit(m.Run())
}

// helper installs the filter received over fd 3 and makes system calls the
// test asserts on, printing what each returned. All of it runs on the
// thread that installed the filter.
func helper() int {
	runtime.LockOSThread()
	if err := handoff.Accept(3); err != nil {
		fmt.Println("accept:", err)
		return 1
	}
	var st unix.Stat_t
	fmt.Println("stat:", errnoName(unix.Stat("/remote/app.conf", &st)))
	fmt.Println("fstatat-empty-path:", errnoName(unix.Fstatat(0, "", &st, unix.AT_EMPTY_PATH)))
	_, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, 0, 0)
	fmt.Println("io_uring_setup:", errnoName(e))
	datagrams()
	r, _, _ := unix.Syscall6(unix.SYS_PRCTL, seccomp.ProbeOption, 0, 0, 0, 0, 0)
	fmt.Printf("probe: %#x\n", r)
	r, _, _ = unix.Syscall6(unix.SYS_PRCTL, unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0, 0)
	fmt.Println("no_new_privs:", r)
	return 0
}

// datagrams sends and receives on a datagram socket pair with and without
// an address: only the calls with one reach the supervisor.
func datagrams() {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		fmt.Println("socketpair:", err)
		return
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	fmt.Println("send-no-address:", errnoName(unix.Sendto(fds[0], []byte("x"), 0, nil)))
	fmt.Println("sendto-address:", errnoName(unix.Sendto(fds[0], []byte("x"), 0, &unix.SockaddrInet4{Port: 9})))
	buf := make([]byte, 8)
	_, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fds[1]), uintptr(unsafe.Pointer(&buf[0])), 8, 0, 0, 0)
	fmt.Println("recv-no-address:", errnoName(e))
	_, _, err = unix.Recvfrom(fds[1], buf, 0)
	fmt.Println("recvfrom-address:", errnoName(err))
}

func errnoName(err error) string {
	if err == nil {
		return "ok"
	}
	if e, ok := err.(unix.Errno); ok && e == 0 {
		return "ok"
	}
	return unix.ErrnoName(err.(unix.Errno))
}

// TestFilterRoutesSystemCalls checks the BPF program against the real
// kernel: which calls reach the supervisor, with which arguments, and
// which are decided in the filter.
func TestFilterRoutesSystemCalls(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	parentFile := os.NewFile(uintptr(fds[0]), "parent")
	childFile := os.NewFile(uintptr(fds[1]), "child")
	conn, err := net.FileConn(parentFile)
	parentFile.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.ExtraFiles = []*os.File{childFile}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	childFile.Close()
	res, err := handoff.Offer(conn.(*net.UnixConn), seccomp.Encode(seccomp.Filter(seccomp.AllOptions)), 10e9)
	if err != nil {
		cmd.Wait()
		t.Fatalf("handoff: %v\n%s", err, out.String())
	}
	l := res.Listener
	defer l.Close()

	seen := make(chan string, 16)
	go func() {
		runtime.LockOSThread()
		defer close(seen)
		fds := []unix.PollFd{{Fd: int32(l.Fd()), Events: unix.POLLIN}}
		var n seccomp.Notif
		for {
			fds[0].Revents = 0
			if _, err := unix.Poll(fds, 10000); err != nil || fds[0].Revents&unix.POLLIN == 0 {
				return // POLLHUP: the helper exited
			}
			if l.Receive(&n) != nil {
				continue
			}
			switch int(n.Data.Nr) {
			case seccomp.SysNewfstatat:
				p, err := seccomp.ReadString(int(n.Pid), n.Data.Args[1], 4096)
				valid := l.Valid(n.ID)
				seen <- fmt.Sprintf("newfstatat %q err=%v valid=%v", p, err, valid)
				l.Fail(n.ID, unix.ENOTRECOVERABLE)
			case seccomp.SysSendto, seccomp.SysRecvfrom:
				seen <- fmt.Sprintf("nr %d", n.Data.Nr)
				l.Fail(n.ID, unix.ENOTRECOVERABLE)
			case seccomp.SysPrctl:
				seen <- "prctl probe"
				l.Return(n.ID, seccomp.ProbeAnswer)
			default:
				l.Continue(n.ID)
			}
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out.String())
	}
	var notified []string
	for s := range seen {
		notified = append(notified, s)
	}
	got := out.String()
	for _, want := range []string{
		"stat: ENOTRECOVERABLE",  // answered by the supervisor
		"fstatat-empty-path: ok", // decided in BPF: never notified
		"io_uring_setup: ENOSYS", // refused in BPF
		"probe: 0x524d4f4b",      // the supervisor's answer
		"send-no-address: ok",    // decided in BPF
		"sendto-address: ENOTRECOVERABLE",
		"recv-no-address: ok", // the datagram sent above
		"recvfrom-address: ENOTRECOVERABLE",
		"no_new_privs: 1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("helper output lacks %q:\n%s", want, got)
		}
	}
	wantNotified := []string{`newfstatat "/remote/app.conf" err=<nil> valid=true`,
		fmt.Sprintf("nr %d", seccomp.SysSendto), fmt.Sprintf("nr %d", seccomp.SysRecvfrom), "prctl probe"}
	if strings.Join(notified, "\n") != strings.Join(wantNotified, "\n") {
		t.Errorf("notified calls:\n%s\nwant:\n%s", strings.Join(notified, "\n"), strings.Join(wantNotified, "\n"))
	}
}
