package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	// AuditLog is the kube-apiserver's audit log (JSON lines): every
	// request to remocal's operator API, at Metadata level.
	AuditLog string
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
		AuditLog:   auditLogPath(),
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
	for _, d := range []string{pkiDir(), logDir(), confDir(), StaticPodDir(), cniConfDir(), cniDataDir(), podLogsDir(), kubeletRoot(), etcdDataDir(), ctrdRoot()} {
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
		auditPolicyPath(): auditPolicy(),
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
