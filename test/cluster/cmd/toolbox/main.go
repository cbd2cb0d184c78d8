// Command toolbox is the static program the cluster harness's tests run in
// pods (image remocal.local/test/toolbox:v1). Subcommands:
//
//	toolbox serve [-addr :8080] [-text T]   HTTP server answering "T <hostname>"
//	toolbox sleep                           wait for SIGTERM
//	toolbox lookup [-server IP:53] NAME     resolve NAME, print its addresses
//	toolbox get [-timeout D] [-H 'N: V'] URL HTTP GET, print the body
//	toolbox bench-get [-n N] URL            time N GETs, print "get-ns p50=… p90=…" (ns)
//	toolbox dial [-timeout D] HOST:PORT     TCP connect, exit 1 if it fails
//	toolbox ps                              list processes (pid and command line)
//	toolbox addrs                           list interface addresses
//	toolbox aggserve [-addr :8443]         an aggregated-API backend over TLS that
//	        answers /apis/GROUP/VERSION discovery and, for any other path, the
//	        front-proxy identity it was sent (headers and client certificate)
//	toolbox netns (-pid PID | -container ID) -- SUBCOMMAND ARGS...
//	        enter the network namespace of PID, or of the process whose
//	        cgroup names container ID (needs hostPID and SYS_ADMIN), and run
//	        another subcommand there
//	toolbox agent-hello [-auth guess|skip] HOST:PORT
//	        speak remocal's agent protocol without the agent's key, print
//	        how the agent answers (agentwire.go)
//	toolbox fake-agent [-addr 127.0.0.1:47113]
//	        bind an agent's address first, answer like an agent without a
//	        key, print what each client sent (agentwire.go)
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/remocal/remocal/test/latency"
	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: toolbox serve|sleep|lookup|get|dial|ps|addrs|netns|agent-hello|fake-agent [ARGS]"))
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(args)
	case "sleep":
		waitSignal()
	case "lookup":
		err = lookup(args)
	case "get":
		err = get(args)
	case "bench-get":
		err = benchGet(args)
	case "dial":
		err = dial(args)
	case "ps":
		err = ps()
	case "addrs":
		err = addrs()
	case "aggserve":
		err = aggserve(args)
	case "netns":
		err = netns(args)
	case "agent-hello":
		err = agentHello(args)
	case "fake-agent":
		err = fakeAgent(args)
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "toolbox:", err)
	os.Exit(1)
}

func waitSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", ":8080", "listen address")
	text := fs.String("text", "toolbox", "text to answer with")
	_ = fs.Parse(args)
	host, _ := os.Hostname()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("serving on %s\n", l.Addr())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("%s %s from %s\n", r.Method, r.URL.Path, r.RemoteAddr)
		fmt.Fprintf(w, "%s %s\n", *text, host)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { waitSignal(); _ = srv.Close() }()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func lookup(args []string) error {
	fs := flag.NewFlagSet("lookup", flag.ExitOnError)
	server := fs.String("server", "", "DNS server IP:PORT (default: /etc/resolv.conf)")
	timeout := fs.Duration("timeout", 5*time.Second, "timeout")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: toolbox lookup [-server IP:53] NAME")
	}
	r := &net.Resolver{PreferGo: true}
	if *server != "" {
		r.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, *server)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ips, err := r.LookupHost(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	sort.Strings(ips)
	fmt.Println(strings.Join(ips, "\n"))
	return nil
}

func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	timeout := fs.Duration("timeout", 5*time.Second, "timeout")
	var headers headerFlags
	fs.Var(&headers, "H", "request header \"Name: value\" (repeatable)")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: toolbox get [-timeout D] [-H 'Name: value']... URL")
	}
	c := &http.Client{Timeout: *timeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	req, err := http.NewRequest(http.MethodGet, fs.Arg(0), nil)
	if err != nil {
		return err
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", fs.Arg(0), resp.Status)
	}
	return nil
}

// benchGet times N GETs over one keep-alive connection: the in-cluster
// baseline for requests remocal carries from a laptop.
func benchGet(args []string) error {
	fs := flag.NewFlagSet("bench-get", flag.ExitOnError)
	n := fs.Int("n", 100, "requests")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: toolbox bench-get [-n N] URL")
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	durs := make([]time.Duration, *n)
	for i := range durs {
		start := time.Now()
		resp, err := c.Get(fs.Arg(0))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		durs[i] = time.Since(start)
	}
	fmt.Println("get-ns", latency.Summary(durs))
	return nil
}

// headerFlags collects repeated -H flags.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

func dial(args []string) error {
	fs := flag.NewFlagSet("dial", flag.ExitOnError)
	timeout := fs.Duration("timeout", 3*time.Second, "timeout")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: toolbox dial [-timeout D] HOST:PORT")
	}
	c, err := net.DialTimeout("tcp", fs.Arg(0), *timeout)
	if err != nil {
		return err
	}
	fmt.Printf("connected %s -> %s\n", c.LocalAddr(), c.RemoteAddr())
	return c.Close()
}

func ps() error {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(cl) == 0 {
			continue
		}
		fmt.Printf("%d %s\n", pid, strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " ")))
	}
	return nil
}

func addrs() error {
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, ifc := range ifs {
		as, _ := ifc.Addrs()
		for _, a := range as {
			fmt.Printf("%s %s\n", ifc.Name, a)
		}
	}
	return nil
}

// netns enters another process's network namespace on a locked thread and
// re-executes this program from that thread, so the whole new process image
// lives in that namespace.
func netns(args []string) error {
	fs := flag.NewFlagSet("netns", flag.ExitOnError)
	pid := fs.Int("pid", 0, "process whose network namespace to enter")
	container := fs.String("container", "", "container ID (a process whose cgroup names it)")
	_ = fs.Parse(args)
	rest := fs.Args()
	if len(rest) == 0 || (*pid == 0) == (*container == "") {
		return errors.New("usage: toolbox netns (-pid PID | -container ID) -- SUBCOMMAND [ARGS]")
	}
	if *container != "" {
		p, err := pidOfContainer(strings.TrimPrefix(*container, "containerd://"))
		if err != nil {
			return err
		}
		*pid = p
	}
	runtime.LockOSThread()
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", *pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns into the network namespace of pid %d: %w", *pid, err)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(exe, append([]string{os.Args[0]}, rest...), os.Environ())
}

// pidOfContainer finds a process whose cgroup path names the container ID,
// the way remocal's agent finds its target with hostPID.
func pidOfContainer(id string) (int, error) {
	if len(id) < 12 {
		return 0, fmt.Errorf("container ID %q is too short", id)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	best := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		found := false
		for sc.Scan() {
			if strings.Contains(sc.Text(), id) {
				found = true
				break
			}
		}
		f.Close()
		if found && (best == 0 || pid < best) {
			best = pid
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("no process in a cgroup of container %s (is the pod hostPID?)", id)
	}
	return best, nil
}

// aggserve is an aggregated API server in miniature: it shows what the
// apiserver's aggregation layer sends, the way remocal's operator receives
// its callers' identity.
func aggserve(args []string) error {
	fs := flag.NewFlagSet("aggserve", flag.ExitOnError)
	addr := fs.String("addr", ":8443", "listen address")
	_ = fs.Parse(args)
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	srv := &http.Server{
		Addr:              *addr,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
			if len(parts) == 3 && parts[0] == "apis" {
				_ = json.NewEncoder(w).Encode(map[string]any{
					"kind": "APIResourceList", "apiVersion": "v1",
					"groupVersion": parts[1] + "/" + parts[2], "resources": []any{},
				})
				return
			}
			out := map[string]any{
				"path":   r.URL.Path,
				"user":   r.Header.Get("X-Remote-User"),
				"groups": r.Header.Values("X-Remote-Group"),
			}
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				out["clientCN"] = r.TLS.PeerCertificates[0].Subject.CommonName
				out["issuerCN"] = r.TLS.PeerCertificates[0].Issuer.CommonName
			}
			fmt.Printf("%s %s user=%q\n", r.Method, r.URL.Path, out["user"])
			_ = json.NewEncoder(w).Encode(out)
		}),
	}
	fmt.Printf("aggserve on %s\n", *addr)
	go func() { waitSignal(); _ = srv.Close() }()
	if err := srv.ListenAndServeTLS("", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "toolbox-aggserve"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
