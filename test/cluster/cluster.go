package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Logf receives progress messages.
type Logf func(format string, args ...any)

// Cluster is a running harness cluster.
type Cluster struct {
	// Kubeconfig is the cluster-admin kubeconfig.
	Kubeconfig string
	// NodeName and NodeIP identify the single node.
	NodeName string
	NodeIP   string
	// KubectlPath is the kubectl built with the cluster (the machine's
	// /usr/bin/kubectl may be much older).
	KubectlPath string
	// LogDir holds each daemon's log (etcd.log, kube-apiserver.log, ...).
	LogDir string
	// CtrSocket is containerd's socket, for `ctr -a`.
	CtrSocket string
}

// daemon names, in start order.
const (
	dEtcd       = "etcd"
	dContainerd = "containerd"
	dAPIServer  = "kube-apiserver"
	dCM         = "kube-controller-manager"
	dScheduler  = "kube-scheduler"
	dKubelet    = "kubelet"
	dKubeProxy  = "kube-proxy"
)

var allDaemons = []string{dEtcd, dContainerd, dAPIServer, dCM, dScheduler, dKubelet, dKubeProxy}

func requireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("the cluster harness must run as root: it starts containerd and the kubelet and changes host networking (run it with sudo)")
	}
	return nil
}

// lock serialises harness commands on this machine.
func lock() (func(), error) {
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(CacheDir(), ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, err
		}
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func handle(bins *binaries) *Cluster {
	c := &Cluster{
		Kubeconfig: adminKubeconfig(),
		NodeName:   NodeName,
		NodeIP:     NodeIP,
		LogDir:     logDir(),
		CtrSocket:  ctrdSocket(),
	}
	if bins != nil {
		c.KubectlPath = bins.kubectl
	} else {
		c.KubectlPath = (&component{name: "kubernetes", version: KubernetesVersion}).bin("kubectl")
	}
	return c
}

// Up brings the cluster up, building what is not cached yet, and returns it
// once it is usable: apiserver ready, node Ready, the default service
// account there, CoreDNS answering, and kube-proxy serving ClusterIPs. A
// cluster that is already up and healthy is returned as is; leftovers of a
// broken one are torn down first. If Up fails, it undoes what it did
// (unless REMOCAL_CLUSTER_KEEP_ON_FAILURE=1, to debug).
func Up(ctx context.Context, logf Logf) (*Cluster, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := requireRoot(); err != nil {
		return nil, err
	}
	unlock, err := lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	start := time.Now()

	if j, _ := loadJournal(); j != nil {
		if j.Phase == "up" {
			if err := healthy(ctx); err == nil {
				logf("up: the cluster is already running (since %s)", j.Started.Format(time.RFC3339))
				bins, err := ensureBuilt(ctx, logf)
				if err != nil {
					return nil, err
				}
				// The toolbox may have changed since: refresh the images.
				if err := importClusterImages(ctx, bins, logf); err != nil {
					return nil, err
				}
				return handle(bins), nil
			} else {
				logf("up: a cluster is recorded but not healthy (%v); tearing it down first", err)
			}
		} else {
			logf("up: leftovers of an unfinished cluster-up found; tearing them down first")
		}
		if err := down(ctx, logf); err != nil {
			return nil, fmt.Errorf("cleaning up the previous cluster failed: %w (fix that, then run make cluster-down)", err)
		}
	} else if leftovers := findLeftovers(); len(leftovers) > 0 {
		logf("up: leftovers found without a journal (%s); tearing them down first", strings.Join(leftovers, ", "))
		if err := down(ctx, logf); err != nil {
			return nil, err
		}
	}

	if err := ensureHostTools(ctx, logf); err != nil {
		return nil, err
	}
	bins, err := ensureBuilt(ctx, logf)
	if err != nil {
		return nil, err
	}
	logf("up: binaries ready after %s", time.Since(start).Round(time.Second))
	if err := checkNoForeignContainerd(); err != nil {
		return nil, err
	}
	if err := checkPortsFree(); err != nil {
		return nil, err
	}

	c, err := bringUp(ctx, bins, logf)
	if err != nil {
		if os.Getenv("REMOCAL_CLUSTER_KEEP_ON_FAILURE") == "1" {
			logf("up: failed; leaving everything as is for debugging (REMOCAL_CLUSTER_KEEP_ON_FAILURE=1); logs in %s; run make cluster-down when done", logDir())
			return nil, err
		}
		logf("up: failed: %v", err)
		logf("up: undoing what was done (logs are kept in %s)", filepath.Join(CacheDir(), "last-failure"))
		saveFailureLogs()
		if derr := down(context.WithoutCancel(ctx), logf); derr != nil {
			return nil, fmt.Errorf("%w; and cleaning up failed too: %v (run make cluster-down)", err, derr)
		}
		return nil, err
	}
	logf("up: cluster ready in %s", time.Since(start).Round(100*time.Millisecond))
	return c, nil
}

// saveFailureLogs copies the daemons' logs out of StateDir before Down
// removes it.
func saveFailureLogs() {
	dst := filepath.Join(CacheDir(), "last-failure")
	_ = os.RemoveAll(dst)
	_ = os.MkdirAll(dst, 0o755)
	ents, _ := os.ReadDir(logDir())
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(logDir(), e.Name())); err == nil {
			_ = os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
		}
	}
}

func bringUp(ctx context.Context, bins *binaries, logf Logf) (*Cluster, error) {
	j := &journal{Started: time.Now(), Phase: "starting", Sysctls: map[string]string{}}
	for _, s := range trackedSysctls {
		if v, err := readSysctl(s); err == nil {
			j.Sysctls[s] = v
		}
	}
	tables, err := nftTables(ctx)
	if err != nil {
		return nil, err
	}
	j.NftTablesBefore = tables
	// The journal's own directory first, so the journal can be written.
	if _, err := os.Stat(StateDir); err == nil {
		return nil, fmt.Errorf("%s exists but holds no journal: remove it by hand after checking it is not needed", StateDir)
	}
	j.CreatedPaths = []string{StateDir}
	if err := j.save(); err != nil {
		return nil, err
	}
	if err := j.notePathState(hardCodedPaths); err != nil {
		return nil, err
	}
	for _, d := range []string{pkiDir(), logDir(), confDir(), cniConfDir(), cniDataDir(), podLogsDir(), kubeletRoot(), etcdDataDir(), ctrdRoot()} {
		if err := j.mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	_ = os.Chmod(etcdDataDir(), 0o700)
	for _, d := range []string{RunDir, ctrdState()} {
		if err := j.mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}

	if err := writePKI(); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	files := map[string]any{
		filepath.Join(cniConfDir(), "10-remocal.conflist"): cniConfig(),
		filepath.Join(confDir(), "kubelet.json"):           kubeletConfig(),
		filepath.Join(confDir(), "kube-proxy.json"):        kubeProxyConfig(bridgeNetfilter()),
	}
	for p, v := range files {
		if err := writeJSON(p, v); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(confDir(), "containerd.toml"), []byte(containerdConfig(bins)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(confDir(), "resolv.conf"), []byte("# remocal test cluster: no upstream DNS\n"), 0o644); err != nil {
		return nil, err
	}

	if err := setUpNetwork(ctx, j, logf); err != nil {
		return nil, err
	}

	// etcd, then containerd (with the images), then the control plane.
	if _, err := startDaemon(dEtcd, bins.etcd, etcdArgs(), nil); err != nil {
		return nil, err
	}
	// containerd must never pull from a registry: a proxy that does not
	// exist stops any attempt on this machine.
	ctrdEnv := []string{"HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9", "NO_PROXY=", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" + bins.cniDir}
	if _, err := startDaemon(dContainerd, "/usr/bin/containerd", []string{"--config", filepath.Join(confDir(), "containerd.toml")}, ctrdEnv); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, "etcd to be healthy", dEtcd, 60*time.Second, etcdHealthy); err != nil {
		return nil, err
	}
	if _, err := startDaemon(dAPIServer, bins.apiserver, apiserverArgs(), nil); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, "containerd to answer", dContainerd, 60*time.Second, func(ctx context.Context) error {
		_, err := ctr(ctx, "version")
		return err
	}); err != nil {
		return nil, err
	}
	if err := importClusterImages(ctx, bins, logf); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, "the apiserver's /readyz", dAPIServer, 120*time.Second, apiserverReady); err != nil {
		return nil, err
	}
	logf("up: apiserver ready")
	c := handle(bins)
	for _, d := range []struct {
		name, exe string
		args      []string
	}{
		{dCM, bins.controllerManager, controllerManagerArgs()},
		{dScheduler, bins.scheduler, schedulerArgs()},
		{dKubelet, bins.kubelet, kubeletArgs()},
		{dKubeProxy, bins.kubeProxy, kubeProxyArgs()},
	} {
		if _, err := startDaemon(d.name, d.exe, d.args, nil); err != nil {
			return nil, err
		}
	}
	if err := c.Apply(ctx, coreDNSManifest()); err != nil {
		return nil, fmt.Errorf("creating CoreDNS: %w", err)
	}
	if err := waitFor(ctx, "node "+NodeName+" to be Ready", dKubelet, 120*time.Second, c.nodeReady); err != nil {
		return nil, err
	}
	logf("up: node %s Ready", NodeName)
	if err := waitFor(ctx, "the default service account", dCM, 60*time.Second, func(ctx context.Context) error {
		_, err := c.Kubectl(ctx, "-n", "default", "get", "serviceaccount", "default", "-o", "name")
		return err
	}); err != nil {
		return nil, err
	}
	var dnsPodIP string
	if err := waitFor(ctx, "CoreDNS to answer on its pod IP", dKubelet, 120*time.Second, func(ctx context.Context) error {
		ip, err := c.readyPodIP(ctx, "kube-system", "k8s-app=kube-dns")
		if err != nil {
			return err
		}
		dnsPodIP = ip
		return lookupVia(ctx, ip+":53", "kubernetes.default.svc."+ClusterDomain, APIServiceIP)
	}); err != nil {
		return nil, err
	}
	logf("up: CoreDNS answering at %s", dnsPodIP)
	// kube-proxy has synced once the DNS Service answers through its
	// ClusterIP and the kubernetes Service reaches the apiserver. Each try
	// uses a new connection: the first one to a brand-new ClusterIP can
	// hang before the rules are in.
	if err := waitFor(ctx, "kube-proxy to serve ClusterIPs", dKubeProxy, 120*time.Second, func(ctx context.Context) error {
		if err := lookupVia(ctx, DNSServiceIP+":53", "kube-dns.kube-system.svc."+ClusterDomain, DNSServiceIP); err != nil {
			return err
		}
		return apiserverReadyAt(ctx, APIServiceIP+":443")
	}); err != nil {
		return nil, err
	}
	logf("up: kube-proxy serving %s (DNS) and %s (kubernetes)", DNSServiceIP, APIServiceIP)
	if err := importUserImages(ctx, logf); err != nil {
		return nil, err
	}
	if err := j.setPhase("up"); err != nil {
		return nil, err
	}
	return c, nil
}

// waitFor polls check (each try bounded by a few seconds) until it
// succeeds, the timeout passes, or the daemon it depends on dies; the
// error then says what was awaited, the last failure, and the daemon's log.
func waitFor(ctx context.Context, what, daemonName string, timeout time.Duration, check func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(tctx)
		cancel()
		if last == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
		if d, err := loadDaemon(daemonName); err == nil && !d.alive() {
			return fmt.Errorf("waiting for %s: %s exited; the end of %s:\n%s", what, daemonName, d.Log, tailFile(d.Log, 30))
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("timed out after %s waiting for %s: %v", timeout, what, last)
			if d, err := loadDaemon(daemonName); err == nil {
				msg += fmt.Sprintf("\nthe end of %s:\n%s", d.Log, tailFile(d.Log, 30))
			}
			return errors.New(msg)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func etcdHealthy(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://127.0.0.1:"+strconv.Itoa(etcdClientPort)+"/health", nil)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !bytes.Contains(b, []byte(`"health":"true"`)) {
		return fmt.Errorf("etcd /health: %s", b)
	}
	return nil
}

// adminTLS is the admin's TLS configuration, for the apiserver checks.
func adminTLS() (*tls.Config, error) {
	caPEM, err := os.ReadFile(pkiFile("ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(pkiFile("admin.crt"), pkiFile("admin.key"))
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "kubernetes.default.svc"}, nil
}

func apiserverReady(ctx context.Context) error {
	return apiserverReadyAt(ctx, net.JoinHostPort(NodeIP, strconv.Itoa(APIServerPort)))
}

// apiserverReadyAt asks /readyz at addr over a new connection.
func apiserverReadyAt(ctx context.Context, addr string) error {
	cfg, err := adminTLS()
	if err != nil {
		return err
	}
	tr := &http.Transport{TLSClientConfig: cfg, Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/readyz", nil)
	resp, err := (&http.Client{Transport: tr, Timeout: 3 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("/readyz at %s: %s: %s", addr, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// lookupVia resolves name with the DNS server at server (a new UDP socket
// per try) and checks that want is among the answers.
func lookupVia(ctx context.Context, server, name, want string) error {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, name)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if a == want {
			return nil
		}
	}
	return fmt.Errorf("%s via %s: got %v, want %s", name, server, addrs, want)
}

// healthy checks a recorded cluster: daemons alive, apiserver ready, node
// Ready.
func healthy(ctx context.Context) error {
	for _, n := range allDaemons {
		d, err := loadDaemon(n)
		if err != nil {
			return fmt.Errorf("%s: no record: %w", n, err)
		}
		if !d.alive() {
			return fmt.Errorf("%s (pid %d) is not running", n, d.PID)
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := apiserverReady(tctx); err != nil {
		return err
	}
	return handle(nil).nodeReady(tctx)
}

// Attach returns the running cluster, or an error saying how to start one.
func Attach(ctx context.Context) (*Cluster, error) {
	j, err := loadJournal()
	if err != nil {
		return nil, err
	}
	if j == nil || j.Phase != "up" {
		return nil, errors.New("no cluster is running on this machine: run make cluster-up (as root) first")
	}
	if err := healthy(ctx); err != nil {
		return nil, fmt.Errorf("the cluster is not healthy: %w (run make cluster-down && make cluster-up)", err)
	}
	return handle(nil), nil
}

// Running reports whether a healthy cluster is up.
func Running(ctx context.Context) bool {
	j, _ := loadJournal()
	return j != nil && j.Phase == "up" && healthy(ctx) == nil
}

// Kubectl runs the cluster's kubectl as cluster-admin and returns its
// standard output; the error carries its standard error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.KubectlInput(ctx, "", args...)
}

// KubectlInput is Kubectl with standard input.
func (c *Cluster) KubectlInput(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := c.KubectlCmd(ctx, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// KubectlCmd returns an unstarted kubectl command with the admin kubeconfig.
func (c *Cluster) KubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.KubectlPath, append([]string{"--kubeconfig", c.Kubeconfig, "--cache-dir", filepath.Join(StateDir, "kubectl-cache")}, args...)...)
	cmd.Env = daemonEnv([]string{"KUBECONFIG=" + c.Kubeconfig})
	return cmd
}

// Apply applies a manifest (YAML or JSON, several documents allowed).
func (c *Cluster) Apply(ctx context.Context, manifest string) error {
	_, err := c.KubectlInput(ctx, manifest, "apply", "-f", "-")
	return err
}

func (c *Cluster) nodeReady(ctx context.Context) error {
	out, err := c.Kubectl(ctx, "get", "node", NodeName, "-o", "json")
	if err != nil {
		return err
	}
	var node struct {
		Status struct {
			Conditions []struct{ Type, Status, Reason, Message string }
		}
	}
	if err := json.Unmarshal([]byte(out), &node); err != nil {
		return err
	}
	for _, cd := range node.Status.Conditions {
		if cd.Type == "Ready" {
			if cd.Status == "True" {
				return nil
			}
			return fmt.Errorf("node not Ready: %s: %s", cd.Reason, cd.Message)
		}
	}
	return errors.New("node has no Ready condition yet")
}

// readyPodIP returns the IP of a Ready pod matching selector.
func (c *Cluster) readyPodIP(ctx context.Context, ns, selector string) (string, error) {
	out, err := c.Kubectl(ctx, "-n", ns, "get", "pods", "-l", selector, "-o", "json")
	if err != nil {
		return "", err
	}
	var list struct {
		Items []struct {
			Status struct {
				PodIP      string
				Phase      string
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return "", err
	}
	for _, p := range list.Items {
		for _, cd := range p.Status.Conditions {
			if cd.Type == "Ready" && cd.Status == "True" && p.Status.PodIP != "" {
				return p.Status.PodIP, nil
			}
		}
	}
	return "", fmt.Errorf("no Ready pod with %s in %s yet", selector, ns)
}

// ctr runs containerd's ctr against the harness's containerd, in the
// Kubernetes namespace.
func ctr(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "ctr", append([]string{"--address", ctrdSocket(), "--namespace", containerdNSK8s}, args...)...)
}

// ImportImage imports an OCI archive into the node's containerd, where pods
// find it without pulling.
func (c *Cluster) ImportImage(ctx context.Context, tarPath string) error {
	_, err := ctr(ctx, "images", "import", "--no-unpack=false", tarPath)
	if err != nil {
		return fmt.Errorf("importing %s: %w", tarPath, err)
	}
	return nil
}

// Images lists the image names in the node's containerd.
func (c *Cluster) Images(ctx context.Context) ([]string, error) {
	out, err := ctr(ctx, "images", "list", "-q")
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// checkNoForeignContainerd refuses to run next to another containerd that
// owns the hard-coded /run/containerd.
func checkNoForeignContainerd() error {
	if pids := processesWhere("/usr/bin/containerd"); len(pids) > 0 {
		return fmt.Errorf("another containerd is running (pids %v); the harness's containerd shares hard-coded paths (/run/containerd) with it: stop it first", pids)
	}
	return nil
}

// loopbackPorts are the ports the daemons listen on at 127.0.0.1.
var loopbackPorts = map[int]string{
	etcdClientPort: "etcd (clients)",
	etcdPeerPort:   "etcd (peers)",
	10248:          "the kubelet's healthz",
	10249:          "kube-proxy's metrics",
	10256:          "kube-proxy's healthz",
	10257:          "kube-controller-manager",
	10259:          "kube-scheduler",
}

// checkPortsFree fails early, with the culprit named, when another program
// holds a port a daemon needs.
func checkPortsFree() error {
	for port, who := range loopbackPorts {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("127.0.0.1:%d is taken by another program, and %s needs it: free it (ss -ltnp 'sport = :%d' names the holder)", port, who, port)
		}
		l.Close()
	}
	return nil
}

// ensureHostTools installs containerd and runc from Debian if missing, and
// checks for the rest (ip, nft).
func ensureHostTools(ctx context.Context, logf Logf) error {
	var missing []string
	for _, t := range []struct{ bin, pkg string }{
		{"/usr/bin/containerd", "containerd"},
		{"/usr/bin/containerd-shim-runc-v2", "containerd"},
		{"/usr/bin/ctr", "containerd"},
		{"/usr/sbin/runc", "runc"},
		{"/usr/sbin/nft", "nftables"},
		{"/usr/sbin/ip", "iproute2"},
	} {
		if _, err := os.Stat(t.bin); err != nil && !contains(missing, t.pkg) {
			missing = append(missing, t.pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	logf("up: installing %s from Debian", strings.Join(missing, " "))
	args := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		upd := exec.CommandContext(ctx, "apt-get", "update")
		upd.Env = env
		if uout, uerr := upd.CombinedOutput(); uerr != nil {
			return fmt.Errorf("apt-get update: %w\n%s", uerr, uout)
		}
		cmd = exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		if out2, err2 := cmd.CombinedOutput(); err2 != nil {
			return fmt.Errorf("apt-get install %s: %w\n%s\n%s", strings.Join(missing, " "), err2, out, out2)
		}
	}
	return nil
}

// findLeftovers names what of a harness cluster is on the machine without
// a journal (a journal-less crash, or a removed StateDir).
func findLeftovers() []string {
	var l []string
	for _, n := range []string{NodeBridge, CNIBridge, sinkBridge} {
		if linkExists(n) {
			l = append(l, "link "+n)
		}
	}
	for _, p := range []string{StateDir, RunDir} {
		if _, err := os.Stat(p); err == nil {
			l = append(l, p)
		}
	}
	if ps := ourProcesses(); len(ps) > 0 {
		l = append(l, fmt.Sprintf("processes %v", ps))
	}
	if ts, err := nftTables(context.Background()); err == nil && contains(ts, "inet "+guardTable) {
		l = append(l, "nft table inet "+guardTable)
	}
	return l
}

// ourProcesses finds the harness's daemons without pid files: processes
// running a binary from the cache, and containerd with the harness's config.
func ourProcesses() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			continue
		}
		exe = strings.TrimSuffix(exe, " (deleted)")
		if strings.HasPrefix(exe, CacheDir()+"/") && !strings.HasPrefix(exe, filepath.Join(CacheDir(), "local")+"/") {
			pids = append(pids, pid)
		}
	}
	pids = append(pids, processesWhere("/usr/bin/containerd", filepath.Join(confDir(), "containerd.toml"))...)
	return pids
}
