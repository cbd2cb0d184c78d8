// Command probe is a statically linked Go program that reports what it sees
// of its environment, for the end-to-end tests: each argument names a check.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/remocal/remocal/test/latency"
)

// listeners and held connections stay open until the process exits.
var (
	listeners []net.Listener
	held      []net.Conn
)

func main() {
	for _, arg := range os.Args[1:] {
		what, param, _ := strings.Cut(arg, "=")
		if err := run(what, param); err != nil {
			fmt.Printf("%s: ERROR %v\n", what, err)
			os.Exit(1)
		}
	}
}

func run(what, param string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	switch what {
	case "env":
		fmt.Printf("env %s=%s\n", param, os.Getenv(param))
	case "hostname":
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		fmt.Printf("hostname %s\n", h)
	case "read":
		b, err := os.ReadFile(param)
		if err != nil {
			return err
		}
		fmt.Printf("read %s: %s\n", param, strings.TrimSpace(string(b)))
	case "stat":
		fi, err := os.Stat(param)
		if err != nil {
			return err
		}
		fmt.Printf("stat %s: size=%d mode=%v\n", param, fi.Size(), fi.Mode())
	case "ls":
		entries, err := os.ReadDir(param)
		if err != nil {
			return err
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		fmt.Printf("ls %s: %s\n", param, strings.Join(names, ","))
	case "resolve":
		addrs, err := net.DefaultResolver.LookupHost(ctx, param)
		if err != nil {
			return err
		}
		fmt.Printf("resolve %s: %s\n", param, strings.Join(addrs, ","))
	case "redis":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", param)
		if err != nil {
			return err
		}
		defer conn.Close()
		fmt.Fprintf(conn, "PING\r\n")
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			return err
		}
		fmt.Printf("redis %s: %s (remote %s)\n", param, strings.TrimSpace(line), conn.RemoteAddr())
	case "hold":
		// Connect and keep the connection open until the process exits.
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", param)
		if err != nil {
			return err
		}
		held = append(held, conn)
		fmt.Printf("holding %s\n", param)
	case "udp":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "udp", param)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write([]byte("hello"))
		buf := make([]byte, 100)
		n, err := conn.Read(buf)
		if err != nil {
			return err
		}
		fmt.Printf("udp %s: %s\n", param, buf[:n])
	case "get":
		resp, err := http.Get(param)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Printf("get %s: %d %s\n", param, resp.StatusCode, strings.TrimSpace(string(b)))
	case "serve":
		// Serve HTTP on param (":8080"), answer "local probe", print one
		// line per request, exit after the first request.
		l, err := net.Listen("tcp", param)
		if err != nil {
			return err
		}
		fmt.Printf("serving %s\n", param)
		done := make(chan struct{})
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Printf("request %s %s user=%s\n", r.Method, r.URL.Path, r.Header.Get("X-Remocal-User"))
			w.Header().Set("X-Served-By", "local-probe")
			fmt.Fprintln(w, "local probe")
			select {
			case <-done:
			default:
				close(done)
			}
		})}
		go srv.Serve(l)
		<-done
		time.Sleep(100 * time.Millisecond) // let the response flush before exiting
		srv.Close()
	case "serve-peer":
		// Serve HTTP on param, printing each request's peer and local
		// address as the server sees them; close the listener at the
		// first line on stdin, exit at the second.
		l, err := net.Listen("tcp", param)
		if err != nil {
			return err
		}
		fmt.Printf("serving %s\n", param)
		go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Printf("peer from=%s local=%s\n", r.RemoteAddr, r.Context().Value(http.LocalAddrContextKey))
			w.Header().Set("X-Served-By", "local-probe")
			fmt.Fprintln(w, "local probe")
		}))
		stdin := bufio.NewReader(os.Stdin)
		stdin.ReadString('\n')
		l.Close()
		fmt.Println("closed listener")
		stdin.ReadString('\n')
	case "serve-all":
		// Like serve, but serve until killed: a pod's kubelet probes
		// reach a stealing program too, and must be answered.
		l, err := net.Listen("tcp", param)
		if err != nil {
			return err
		}
		fmt.Printf("serving %s\n", param)
		return http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Printf("request %s %s user=%s agent=%s\n", r.Method, r.URL.Path, r.Header.Get("X-Remocal-User"), r.UserAgent())
			fmt.Fprintln(w, "local probe")
		}))
	case "wait":
		// Wait for a line on stdin: the test does something meanwhile.
		fmt.Println("waiting")
		bufio.NewReader(os.Stdin).ReadString('\n')
	case "listen":
		// Listen without serving, until the process exits.
		l, err := net.Listen("tcp", param)
		if err != nil {
			return err
		}
		listeners = append(listeners, l)
		fmt.Printf("listening %s\n", param)
	case "run":
		// Run a child process: "PROGRAM+ARG+ARG...".
		argv := strings.Split(param, "+")
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	case "bench-stat":
		// Time N stat calls of a local path (each one notified and let
		// through by a supervisor) and print the distribution.
		n, _ := strconv.Atoi(param)
		durs := make([]time.Duration, n)
		var st syscall.Stat_t
		for i := range durs {
			start := time.Now()
			syscall.Stat("/etc/passwd", &st)
			durs[i] = time.Since(start)
		}
		fmt.Println("stat-ns", latency.Summary(durs))
	case "bench-udp":
		// "N+HOW+IP:PORT": N round trips to a UDP echo server, timed
		// one by one; HOW is send (a connected socket, send and read),
		// sendto (sendto and recvfrom with addresses) or sendmsg.
		argv := strings.Split(param, "+")
		n, _ := strconv.Atoi(argv[0])
		durs, err := benchUDP(n, argv[1], argv[2])
		if err != nil {
			return err
		}
		fmt.Println("udp-ns", latency.Summary(durs))
	case "dial-addrs":
		// Connect to param and print the connection's addresses as Go
		// reports them (getsockname and getpeername).
		c, err := net.Dial("tcp", param)
		if err != nil {
			return err
		}
		fmt.Printf("dialled local=%s remote=%s\n", c.LocalAddr(), c.RemoteAddr())
		c.Close()
	case "echo":
		return echo(param)
	case "bench-accept":
		// "N+ADDR": listen on ADDR, then N times connect to it, accept
		// and close both ends; print the distribution per connection.
		n, addr, _ := strings.Cut(param, "+")
		count, _ := strconv.Atoi(n)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		defer l.Close()
		durs := make([]time.Duration, count)
		for i := range durs {
			start := time.Now()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				return err
			}
			a, err := l.Accept()
			if err != nil {
				return err
			}
			durs[i] = time.Since(start)
			a.Close()
			c.Close()
		}
		fmt.Println("accept-ns", latency.Summary(durs))
	case "bench-get":
		// GET "N+URL" N times over one keep-alive connection; print the
		// latency distribution.
		n, url, _ := strings.Cut(param, "+")
		count, _ := strconv.Atoi(n)
		c := &http.Client{Transport: &http.Transport{Proxy: nil}}
		durs := make([]time.Duration, count)
		for i := range durs {
			start := time.Now()
			resp, err := c.Get(url)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			durs[i] = time.Since(start)
		}
		fmt.Println("get-ns", latency.Summary(durs))
	case "time":
		// Run "N+PROGRAM+ARGS" N times; print the median wall time.
		argv := strings.Split(param, "+")
		n, _ := strconv.Atoi(argv[0])
		durs := make([]time.Duration, n)
		for i := range durs {
			cmd := exec.Command(argv[1], argv[2:]...)
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			durs[i] = time.Since(start)
		}
		fmt.Println("time-ns", latency.Summary(durs))
	case "download":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", param)
		if err != nil {
			return err
		}
		defer conn.Close()
		start := time.Now()
		n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, conn, make([]byte, 256<<10))
		if err != nil {
			return err
		}
		fmt.Printf("download-bytes %d ns %d\n", n, time.Since(start).Nanoseconds())
	case "bench-newconn":
		// GET "N+URL" N times, a new connection each; print the latency
		// distribution and how many failed.
		return benchNewConn(param)
	default:
		return fmt.Errorf("unknown check %q", what)
	}
	return nil
}
