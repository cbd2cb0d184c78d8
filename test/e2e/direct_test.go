package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/test/envtest"
)

// Outgoing TCP connections of a local target's session are made in the
// target's namespace and handed to the program connected (docs/exec.md):
// the server sees the program's own socket, not the agent's. Sockets that
// cannot be handed over fall back to the relay and still work.

const (
	handedOver = "outgoing connection handed over connected in the target"
	relayed    = "outgoing connection relayed"
)

// serveEcho listens on the app's address in the target's namespace. Each
// connection gets, once the client has shut down its side, "from=ADDR
// got=DATA": the client's address as the server sees it, and what it sent.
func serveEcho(t testing.TB, env *localenv.Env, port int) string {
	ns, err := env.App.NS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	l, err := ns.Listen(t.Context(), "tcp", net.JoinHostPort(localenv.AppIP.String(), strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				data, _ := io.ReadAll(io.LimitReader(c, 4096))
				fmt.Fprintf(c, "from=%s got=%s", c.RemoteAddr(), data)
			}()
		}
	}()
	return l.Addr().String()
}

// serveHTTPEcho is serveEcho over HTTP: the body of any request.
func serveHTTPEcho(t testing.TB, env *localenv.Env, port int) string {
	ns, err := env.App.NS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	l, err := ns.Listen(t.Context(), "tcp", net.JoinHostPort(localenv.AppIP.String(), strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
		fmt.Fprintf(w, "from=%s got=%s", r.RemoteAddr, data)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

var (
	fromRe  = regexp.MustCompile(`from=(\S+) got=`)
	localRe = regexp.MustCompile(`local=(\S+) peer=(\S+)`)
)

// checkExchange checks a program's output: the reply carries what it sent
// (data both ways, after its half-close), and the socket's addresses.
// direct: the server saw the program's own socket (its local address is
// the client address the server saw); otherwise the agent's, while the
// program's socket is on this machine's loopback.
func checkExchange(t *testing.T, out, sent, dest string, direct bool) {
	t.Helper()
	mustContain(t, "program output", out, "got="+sent)
	from, local := fromRe.FindStringSubmatch(out), localRe.FindStringSubmatch(out)
	if from == nil || local == nil {
		t.Fatalf("no from= or local= in the output:\n%s", out)
	}
	if local[2] != dest {
		t.Errorf("getpeername showed %s, want the destination %s", local[2], dest)
	}
	switch {
	case direct && local[1] != from[1]:
		t.Errorf("the server saw %s while the program's socket is %s: the bytes crossed a relay", from[1], local[1])
	case direct && !strings.HasPrefix(local[1], localenv.AppIP.String()+":"):
		t.Errorf("the program's socket is at %s, want the target's address %s", local[1], localenv.AppIP)
	case !direct && !strings.HasPrefix(local[1], "127.0.0.1:"):
		t.Errorf("a relayed socket must be on loopback (to the local proxy), got %s", local[1])
	}
}

const pythonEcho = `
import asyncio, socket, sys
ip, port = sys.argv[1], int(sys.argv[2])

s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.connect((ip, port))
print("local=%s:%d peer=%s:%d" % (s.getsockname() + s.getpeername()))
s.sendall(b"hello from python")
s.shutdown(socket.SHUT_WR)
data = b""
while chunk := s.recv(4096):
    data += chunk
print("reply", data.decode())
print("nodelay=%d" % s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

async def main():
    reader, writer = await asyncio.open_connection(ip, port)
    l, p = writer.get_extra_info("sockname"), writer.get_extra_info("peername")
    print("async local=%s:%d peer=%s:%d" % (l + p))
    writer.write(b"hello from asyncio")
    writer.write_eof()
    data = await reader.read()
    print("async reply", data.decode())
    writer.close()
asyncio.run(main())
`

func TestOutgoingHandedOverConnected(t *testing.T) {
	env := envtest.New(t)
	dest := serveEcho(t, env, 9300)
	httpDest := serveHTTPEcho(t, env, 9301)
	ip, port, _ := net.SplitHostPort(dest)
	flags := []string{"--no-incoming", "--log-level", "debug"}

	t.Run("go", func(t *testing.T) {
		r := execIn(t, env, flags, built(t, "probe"), "echo="+dest)
		if r.Code != 0 {
			t.Fatalf("exit %d", r.Code)
		}
		checkExchange(t, r.Stdout, "hello from Go", dest, true)
		mustContain(t, "probe output", r.Stdout, "flags nonblock=1 cloexec=1")
		mustContain(t, "remocal's log", r.Stderr, handedOver)
	})
	t.Run("python", func(t *testing.T) {
		py := requireTool(t, "python3")
		r := execIn(t, env, flags, py, "-c", pythonEcho, ip, port)
		if r.Code != 0 {
			t.Fatalf("exit %d", r.Code)
		}
		i := max(strings.Index(r.Stdout, "async local"), 0)
		blocking, async := r.Stdout[:i], r.Stdout[i:]
		checkExchange(t, blocking, "hello from python", dest, true)
		checkExchange(t, async, "hello from asyncio", dest, true)
		mustContain(t, "python output", blocking, "nodelay=1")
		if n := strings.Count(r.Stderr, handedOver); n != 2 {
			t.Errorf("%d connections handed over, want 2:\n%s", n, r.Stderr)
		}
	})
	t.Run("curl", func(t *testing.T) {
		curl := requireTool(t, "curl")
		r := execIn(t, env, flags, curl, "-sS", "--max-time", "20", "--data", "hello from curl",
			"-w", "\nlocal=%{local_ip}:%{local_port} peer=%{remote_ip}:%{remote_port}\n", "http://"+httpDest+"/")
		if r.Code != 0 {
			t.Fatalf("exit %d", r.Code)
		}
		checkExchange(t, r.Stdout, "hello from curl", httpDest, true)
		mustContain(t, "remocal's log", r.Stderr, handedOver)
	})
	c := buildConnect(t)
	t.Run("static-c-blocking", func(t *testing.T) {
		r := execIn(t, env, flags, c, "block", ip, port)
		if r.Code != 0 {
			t.Fatalf("exit %d", r.Code)
		}
		checkExchange(t, r.Stdout, "hello from C", dest, true)
		// Options set before connect are on the socket the program got.
		mustContain(t, "program output", r.Stdout,
			"options nodelay=1 keepalive=1 rcvbuf=65536 linger=1/5 tos=16", "flags nonblock=0 cloexec=0")
	})
	t.Run("static-c-nonblocking", func(t *testing.T) {
		r := execIn(t, env, flags, c, "nonblock", ip, port)
		if r.Code != 0 {
			t.Fatalf("exit %d", r.Code)
		}
		checkExchange(t, r.Stdout, "hello from C", dest, true)
		mustContain(t, "program output", r.Stdout, "connect=EINPROGRESS", "connect again=0 then EISCONN", "flags nonblock=1 cloexec=1")
		if n := strings.Count(r.Stderr, handedOver); n != 1 {
			t.Errorf("%d connections handed over, want 1 (connect again is the kernel's):\n%s", n, r.Stderr)
		}
	})
	t.Run("connect-again-while-connecting", func(t *testing.T) {
		// Nobody answers at this address of the target's network: the
		// first connect stays in progress, and the second is the kernel's
		// to answer, not a second connection.
		r := execIn(t, env, flags, c, "again", "10.77.0.222", "80")
		mustContain(t, "program output", r.Stdout, "connect again=EALREADY")
		if n := strings.Count(r.Stderr, handedOver); n != 1 || strings.Contains(r.Stderr, relayed) {
			t.Errorf("%d connections handed over, want exactly 1 and none relayed:\n%s", n, r.Stderr)
		}
	})
	t.Run("refused", func(t *testing.T) {
		// The target's own answer: nothing listens on the port there. A
		// non-blocking socket learns it from SO_ERROR after EINPROGRESS,
		// a blocking one from connect.
		r := execIn(t, env, flags, built(t, "probe"), "echo="+net.JoinHostPort(ip, "9309"))
		if r.Code == 0 || !strings.Contains(r.Stdout, "connection refused") {
			t.Errorf("Go: exit %d, output %q: want connection refused", r.Code, r.Stdout)
		}
		r = execIn(t, env, flags, c, "nonblock", ip, "9309")
		mustContain(t, "non-blocking C", r.Stdout, "connect=EINPROGRESS", "SO_ERROR: errno 111")
		r = execIn(t, env, flags, c, "block", ip, "9309")
		mustContain(t, "blocking C", r.Stdout, "connect: errno 111")
	})
}

// TestOutgoingFallsBackToTheRelay: sockets that cannot be replaced still
// connect, through the agent.
func TestOutgoingFallsBackToTheRelay(t *testing.T) {
	env := envtest.New(t)
	dest := serveEcho(t, env, 9310)
	ip, port, _ := net.SplitHostPort(dest)
	c := buildConnect(t)
	for _, tc := range []struct{ mode, reason string }{
		{"epoll", "registered in an epoll instance before connect"},
		{"bind", "bound before connect"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			r := execIn(t, env, []string{"--no-incoming", "--log-level", "debug"}, c, tc.mode, ip, port)
			if r.Code != 0 {
				t.Fatalf("exit %d", r.Code)
			}
			checkExchange(t, r.Stdout, "hello from C", dest, false)
			mustContain(t, "remocal's log", r.Stderr, relayed, tc.reason)
			if strings.Contains(r.Stderr, handedOver) {
				t.Errorf("a socket that must be relayed was handed over:\n%s", r.Stderr)
			}
		})
	}
}

// buildConnect builds testdata/connect with `musl-gcc -static`.
func buildConnect(t *testing.T) string {
	t.Helper()
	cc := requireTool(t, "musl-gcc")
	bin := filepath.Join(t.TempDir(), "connect")
	out, err := exec.Command(cc, "-static", "-O2", "-o", bin, filepath.Join("testdata", "connect", "connect.c")).CombinedOutput()
	if err != nil {
		t.Fatalf("musl-gcc: %v\n%s", err, out)
	}
	return bin
}
