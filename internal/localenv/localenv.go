// Package localenv builds a miniature "remote cluster" out of Linux network
// namespaces, so that remocal's agent, session runtime and demos can be
// exercised against real pod-like processes without Kubernetes.
//
// The environment is a bridge in a "cluster" namespace and one namespace per
// pod, joined by veth pairs:
//
//	app   10.77.0.10  examples/inventory on :8080, own /etc, hostname and env
//	redis 10.77.0.20  redis-server on :6379
//	dns   10.77.0.53  dnsmasq answering the *.demo.svc.cluster.local names
//	peer  10.77.0.100 nothing runs; tests send "in-cluster" traffic from it
//
// Nothing in the root network namespace is touched and there is no route
// into 10.77.0.0/24 from outside the pods: the only ways in are entering a
// pod's namespace (Env.Dial, Env.HTTP, Pod.NS) or going through remocal,
// which is exactly what the tests want to prove.
//
// Everything Start creates is recorded before it is created, so Close can
// remove it even after a Start that failed half way, and every process is
// started with a parent-death signal so a crashed test leaves no daemons.
// Namespaces left behind by a test process that was SIGKILLed are reaped by
// the next Start (see reapStale).
package localenv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Addresses and names of the demo environment. Tests and the demo refer to
// these instead of repeating literals.
const (
	DemoSubnet = "10.77.0.0/24"

	AppPort   = 8080
	RedisPort = 6379
	DNSPort   = 53

	// KubeNamespace is the Kubernetes namespace the DNS names pretend the
	// pods live in.
	KubeNamespace = "demo"

	AppDNSName   = "inventory.demo.svc.cluster.local"
	RedisDNSName = "redis.demo.svc.cluster.local"
	DNSDNSName   = "dns.demo.svc.cluster.local"
	// HostsOnlyName exists only in the app pod's /etc/hosts, never in DNS,
	// so a test can tell whether a lookup consulted the pod's hosts file.
	HostsOnlyName = "legacy-billing.internal"

	// The app pod's environment (besides PATH and LISTEN_ADDR).
	AppServiceName = "inventory"
	AppGreeting    = "hello from the remote pod"
	AppAPIToken    = "remote-secret-token"
	AppRedisAddr   = "redis.demo.svc.cluster.local:6379"
	// AppConfigPath is where the app pod sees its config file; the host
	// has no such file.
	AppConfigPath = "/etc/inventory/config.json"
	// AppSearchDomains is the search line of the app pod's resolv.conf.
	AppSearchDomains = "demo.svc.cluster.local svc.cluster.local cluster.local"

	// PodPATH is the only inherited-looking variable pod processes get.
	PodPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

var (
	subnet = netip.MustParsePrefix(DemoSubnet)

	AppIP   = netip.MustParseAddr("10.77.0.10")
	RedisIP = netip.MustParseAddr("10.77.0.20")
	DNSIP   = netip.MustParseAddr("10.77.0.53")
	PeerIP  = netip.MustParseAddr("10.77.0.100")
	// HostsOnlyIP is what HostsOnlyName maps to in the app pod: Redis, so
	// that a connection to it proves the name resolved and works.
	HostsOnlyIP = RedisIP
)

// Options configures Start. The zero value is ready to use.
type Options struct {
	// Prefix starts the name of every namespace and /etc/netns directory.
	// The default "rmc<pid>" (with "-<n>" added for the second and later
	// environments of a process) keeps parallel test processes apart and
	// lets a later Start recognise leftovers of a process that died.
	Prefix string
	// AppBinary is a built examples/inventory. Empty means build it from
	// this repository's source, reusing an earlier build with identical
	// inputs.
	AppBinary string
	// Logf receives progress and every line the pods' processes print,
	// prefixed with the pod name. Nil discards them.
	Logf func(format string, args ...any)
}

// Env is a running environment. Its exported fields are read-only.
type Env struct {
	App, Redis, DNS, Peer *Pod
	// Prefix is the resolved Options.Prefix.
	Prefix string
	// ClusterNetNSName holds the bridge that connects the pods.
	ClusterNetNSName string
	// StartDuration is how long Start took, for reporting.
	StartDuration time.Duration

	tools     tools
	appBinary string

	mu         sync.Mutex
	closed     bool
	namespaces []string // every namespace we created or tried to create
	etcDirs    []string // every /etc/netns/<name> we created
	pods       []*Pod
	vethSeq    int

	closeOnce sync.Once
	closeErr  error

	logMu     sync.Mutex
	logf      func(string, ...any)
	logClosed bool
}

var envSeq atomic.Int64

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,40}$`)

// Start builds the environment and returns once every service answers, so a
// test never needs to sleep or retry. On failure it removes whatever it had
// created.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	t0 := time.Now()
	if reason := MissingPrivileges(); reason != "" {
		return nil, errors.New("localenv: " + reason)
	}
	tl, err := findTools()
	if err != nil {
		return nil, err
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = "rmc" + strconv.Itoa(os.Getpid())
		if n := envSeq.Add(1); n > 1 {
			prefix += "-" + strconv.FormatInt(n, 10)
		}
	}
	if !nameRE.MatchString(prefix) {
		return nil, fmt.Errorf("localenv: prefix %q must be lower-case letters, digits and dashes", prefix)
	}

	e := &Env{Prefix: prefix, tools: tl, logf: opts.Logf}
	e.ClusterNetNSName = e.nsName("cluster")
	defer func() {
		if err != nil {
			if cerr := e.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("cleanup after failed start: %w", cerr))
			}
		}
	}()

	e.reapStale()

	// Building the app is the slowest step when the cache is cold (a
	// first static build of net/http takes ~15 s here), so it overlaps
	// with creating the network and starting Redis and dnsmasq.
	type buildResult struct {
		path string
		err  error
	}
	buildCtx, cancelBuild := context.WithCancel(ctx)
	built := make(chan buildResult, 1)
	go func() {
		p, err := resolveAppBinary(buildCtx, opts.AppBinary, e.logfNow)
		built <- buildResult{p, err}
	}()
	buildDone := false
	defer func() {
		cancelBuild()
		if !buildDone {
			<-built // never leave the build running behind a failed Start
		}
	}()

	e.App = e.newPod("app", AppIP, "inventory-"+randHex(4))
	e.Redis = e.newPod("redis", RedisIP, "redis-0")
	e.DNS = e.newPod("dns", DNSIP, "dns-"+randHex(4))
	e.Peer = e.newPod("peer", PeerIP, "peer-"+randHex(4))
	e.pods = append(e.pods, e.App, e.Redis, e.DNS, e.Peer)
	if err := e.addPods(ctx, true, e.App, e.Redis, e.DNS, e.Peer); err != nil {
		return nil, err
	}
	tNet := time.Since(t0)

	if err := e.launch(e.Redis, procSpec{argv: []string{
		tl.redis,
		"--bind", RedisIP.String(), "--port", strconv.Itoa(RedisPort),
		"--save", "", "--appendonly", "no", "--protected-mode", "no",
	}}); err != nil {
		return nil, err
	}
	if err := e.launch(e.DNS, procSpec{argv: e.dnsmasqArgv()}); err != nil {
		return nil, err
	}

	b := <-built // the build watches ctx itself
	buildDone = true
	if b.err != nil {
		return nil, b.err
	}
	e.appBinary = b.path
	if err := e.launchApp(e.App, nil); err != nil {
		return nil, err
	}

	var wg sync.WaitGroup
	errs := make([]error, 3)
	checks := []func() error{
		func() error {
			return e.waitReady(ctx, e.Redis, "redis", func(ctx context.Context) error { return e.pingRedis(ctx, e.Peer) })
		},
		func() error {
			return e.waitReady(ctx, e.DNS, "dnsmasq", func(ctx context.Context) error { return e.checkDNS(ctx, e.Peer) })
		},
		func() error {
			return e.waitReady(ctx, e.App, "inventory app", func(ctx context.Context) error { return e.checkHealth(ctx, e.App) })
		},
	}
	for i, check := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = check()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	e.StartDuration = time.Since(t0)
	e.logfNow("localenv: environment %s up in %v (network %v); app pid %d hostname %s",
		prefix, e.StartDuration.Round(time.Millisecond), tNet.Round(time.Millisecond), e.App.PID, e.App.Hostname)
	return e, nil
}

// StartApp runs another inventory instance in a new pod on the bridge, with
// the app pod's files and environment plus env. Tests that kill or disturb
// their target use it so the shared App stays intact. It returns once the
// instance answers /healthz from the peer pod.
func (e *Env) StartApp(ctx context.Context, name string, ip netip.Addr, env map[string]string) (_ *Pod, err error) {
	if !nameRE.MatchString(name) || len(name) > 20 {
		return nil, fmt.Errorf("localenv: pod name %q must be 1-20 lower-case letters, digits and dashes", name)
	}
	if !subnet.Contains(ip) || ip == subnet.Addr() || ip == netip.MustParseAddr("10.77.0.255") {
		return nil, fmt.Errorf("localenv: pod address %s is not a host address in %s", ip, DemoSubnet)
	}
	if e.appBinary == "" {
		return nil, errors.New("localenv: StartApp needs an environment made by Start")
	}
	p := e.newPod(name, ip, name+"-"+randHex(4))
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, errors.New("localenv: environment is closed")
	}
	for _, q := range e.pods {
		if q.Name == name || q.IP == ip {
			e.mu.Unlock()
			return nil, fmt.Errorf("localenv: cannot add pod %s at %s: pod %s already uses that name or address", name, ip, q.Name)
		}
	}
	e.pods = append(e.pods, p) // reserves name and address
	e.mu.Unlock()
	defer func() {
		if err != nil {
			if derr := e.discardPod(p); derr != nil {
				err = errors.Join(err, derr)
			}
		}
	}()
	if err := e.addPods(ctx, false, p); err != nil {
		return nil, err
	}
	if err := e.launchApp(p, env); err != nil {
		return nil, err
	}
	if err := e.waitReady(ctx, p, "inventory app "+name, func(ctx context.Context) error { return e.checkHealth(ctx, p) }); err != nil {
		return nil, err
	}
	return p, nil
}

// discardPod undoes a pod whose StartApp failed, so that a test retrying
// with the same name or address is not blocked until Close. Whatever cannot
// be removed now stays recorded for Close.
func (e *Env) discardPod(p *Pod) error {
	stopErr := p.stop()
	etcDir := filepath.Join(netnsEtcDir, p.NetNSName)
	e.mu.Lock()
	ownNS := slices.Contains(e.namespaces, p.NetNSName) // never delete what another environment made
	ownEtc := slices.Contains(e.etcDirs, etcDir)
	e.mu.Unlock()

	nsGone, rmErr := !ownNS, error(nil)
	if ownNS {
		e.runIP(context.Background(), []string{"-force", "-batch", "-"}, "netns del "+p.NetNSName+"\n")
		_, statErr := os.Lstat(filepath.Join(netnsRunDir, p.NetNSName))
		nsGone = errors.Is(statErr, os.ErrNotExist)
	}
	if ownEtc {
		rmErr = os.RemoveAll(etcDir)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	e.pods = slices.DeleteFunc(e.pods, func(q *Pod) bool { return q == p })
	if nsGone {
		e.namespaces = slices.DeleteFunc(e.namespaces, func(n string) bool { return n == p.NetNSName })
	}
	if rmErr == nil {
		e.etcDirs = slices.DeleteFunc(e.etcDirs, func(d string) bool { return d == etcDir })
	}
	return errors.Join(stopErr, rmErr)
}

// Names returns the names pods can resolve and their addresses: the cluster
// DNS records plus HostsOnlyName, which only the app pods' /etc/hosts knows.
func (e *Env) Names() map[string]netip.Addr {
	return map[string]netip.Addr{
		AppDNSName:    AppIP,
		RedisDNSName:  RedisIP,
		DNSDNSName:    DNSIP,
		HostsOnlyName: HostsOnlyIP,
	}
}

// Pods returns every pod of the environment, including those from StartApp.
func (e *Env) Pods() []*Pod {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.pods)
}

// Dial connects from inside a pod's network namespace, as a process in that
// pod would. A host name is resolved through the cluster DNS from inside the
// pod (not through any pod's /etc/hosts).
func (e *Env) Dial(ctx context.Context, from *Pod, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("localenv: dial %s from pod %s: %w", addr, from.Name, err)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		ips, err := e.Lookup(ctx, from, host)
		if err != nil {
			return nil, fmt.Errorf("localenv: dial %s from pod %s: %w", addr, from.Name, err)
		}
		addr = net.JoinHostPort(ips[0].String(), port)
	}
	ns, err := from.NS()
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	c, err := ns.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("localenv: dial %s %s from pod %s: %w", network, addr, from.Name, err)
	}
	return c, nil
}

// HTTP returns a client whose connections start inside from, so a test can
// act as another pod of the cluster. Keep-alives are off so that no idle
// connection outlives a test (and trips leak checks).
func (e *Env) HTTP(from *Pod) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: requestBoundDials{&http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if rctx, ok := ctx.Value(requestCtxKey{}).(context.Context); ok {
					var cancel context.CancelFunc
					ctx, cancel = context.WithCancel(ctx)
					defer cancel()
					defer context.AfterFunc(rctx, cancel)()
				}
				return e.Dial(ctx, from, network, addr)
			},
			DisableKeepAlives: true,
		}},
	}
}

// requestBoundDials ends a connection attempt when its request is cancelled
// or times out. http.Transport deliberately lets a dial outlive its request
// (to pool the connection for a later one), but these clients never reuse
// connections, and a dial to an address that does not answer would then go
// on for the kernel's SYN timeout (minutes), holding a goroutine that leak
// checks rightly report.
type requestBoundDials struct{ t *http.Transport }

type requestCtxKey struct{}

func (r requestBoundDials) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	return r.t.RoundTrip(req.WithContext(context.WithValue(ctx, requestCtxKey{}, ctx)))
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// transport.
func (r requestBoundDials) CloseIdleConnections() { r.t.CloseIdleConnections() }

// Close stops every process, deletes every namespace and /etc/netns
// directory the environment created, and reports what could not be removed.
// It is safe to call more than once and after a failed Start.
func (e *Env) Close() error {
	e.closeOnce.Do(func() { e.closeErr = e.close() })
	return e.closeErr
}

func (e *Env) close() error {
	e.mu.Lock()
	e.closed = true
	pods := slices.Clone(e.pods)
	namespaces := slices.Clone(e.namespaces)
	etcDirs := slices.Clone(e.etcDirs)
	e.mu.Unlock()

	var errs []error
	// Processes first: a namespace with a process in it outlives its name.
	for _, p := range pods {
		if err := p.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(namespaces) > 0 {
		var script strings.Builder
		for _, ns := range slices.Backward(namespaces) {
			fmt.Fprintf(&script, "netns del %s\n", ns)
		}
		// -force continues past names that were never created; what
		// matters is checked below.
		e.runIP(context.Background(), []string{"-force", "-batch", "-"}, script.String())
		for _, ns := range namespaces {
			if _, err := os.Lstat(filepath.Join(netnsRunDir, ns)); err == nil {
				errs = append(errs, fmt.Errorf("network namespace %s is still present; remove it with: ip netns del %s", ns, ns))
			}
		}
	}
	for _, d := range etcDirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	e.logMu.Lock()
	e.logClosed = true
	e.logMu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("localenv: close %s: %w", e.Prefix, err)
	}
	return nil
}

// logfNow logs unless Close has finished: a testing.T's Logf panics once its
// test is over, and pod output can arrive late.
func (e *Env) logfNow(format string, args ...any) {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	if e.logf == nil || e.logClosed {
		return
	}
	e.logf(format, args...)
}

func (e *Env) nsName(pod string) string { return e.Prefix + "-" + pod }

func randHex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[rand.IntN(len(digits))]
	}
	return string(b)
}
