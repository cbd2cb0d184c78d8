// Package cluster stands up a real single-node Kubernetes on this machine
// for remocal's tests, and tears it down completely.
//
// Everything is built from source through the Go module proxy (Kubernetes,
// etcd, the CNI plugins, CoreDNS, a pause binary) and cached by version
// outside the checkout; containerd and runc come from Debian. The daemons run
// as plain host processes started by Up and stopped by Down. Every change to
// the host (links, routes, nftables tables, sysctls, mounts, directories) is
// recorded in a journal before it is made, so Down undoes it even after a
// partial or failed Up. See docs/cluster.md.
//
// The harness needs root. Tests that need a cluster call Require (or Main
// from TestMain); they skip unless REMOCAL_CLUSTER says how to get one.
package cluster

import (
	"os"
	"path/filepath"
)

// Versions of what the harness builds. Changing one rebuilds only that
// component; the cache keeps each version in a directory of its own.
const (
	KubernetesVersion = "v1.34.4"
	// StagingVersion is the version of the k8s.io/* staging modules that
	// matches KubernetesVersion.
	StagingVersion    = "v0.34.4"
	EtcdVersion       = "v3.6.13"
	CNIPluginsVersion = "v1.9.1"
	CoreDNSVersion    = "v1.12.4"
	// HelmVersion is the helm the operator's chart is installed with: the
	// newest 3.x whose k8s.io modules are the cluster's minor (v0.34.x).
	HelmVersion = "v3.19.5"
)

// Images the harness imports into the node's containerd.
const (
	PauseImage   = "registry.k8s.io/pause:3.10"
	CoreDNSImage = "registry.k8s.io/coredns/coredns:" + CoreDNSVersion
	// ToolboxImage holds test/cluster/cmd/toolbox, a static Go program the
	// harness's own tests (and e2e tests) run in pods: an HTTP server, DNS
	// lookups, dials, and entering another process's network namespace.
	ToolboxImage = "remocal.local/test/toolbox:v1"
)

// Network layout. None of it may overlap the machine's own routes; Up checks.
const (
	// NodeName is the Kubernetes node's name.
	NodeName = "remocal-node"
	// NodeIP is the node's address, on a bridge with no ports (NodeBridge):
	// the apiserver and the kubelet listen there, never on the uplink.
	NodeIP     = "10.243.0.1"
	NodeBridge = "rmc-node0"
	// CNIBridge is the pods' bridge; CNIGateway is the host's address on it.
	CNIBridge  = "rmc-cni0"
	CNIGateway = "10.244.0.1"
	// PodCIDR is the cluster's pod network; the node's pods get addresses
	// from NodePodCIDR.
	PodCIDR     = "10.244.0.0/16"
	NodePodCIDR = "10.244.0.0/24"
	// ServiceCIDR is routed onto CNIBridge, so that a ClusterIP packet that
	// kube-proxy did not translate dies on the bridge instead of taking the
	// default route.
	ServiceCIDR     = "10.96.0.0/16"
	APIServiceIP    = "10.96.0.1"
	DNSServiceIP    = "10.96.0.10"
	ClusterDomain   = "cluster.local"
	APIServerPort   = 6443
	etcdClientPort  = 12379
	etcdPeerPort    = 12380
	kubeletPort     = 10250
	cniNetworkName  = "remocal"
	guardTable      = "remocal_cluster_guard"
	sinkBridge      = "rmc-sink0"
	containerdNSK8s = "k8s.io"
)

// Host paths. The harness keeps its own state under StateDir and RunDir;
// hardCodedPaths are the places the kubelet and containerd use whatever they
// are configured with, cleaned at Down when the harness created them.
var (
	StateDir = "/var/lib/remocal-cluster"
	RunDir   = "/run/remocal-cluster"
)

var hardCodedPaths = []string{
	"/run/containerd",                 // shim sockets (/run/containerd/s) and runc's default root
	"/var/lib/kubelet",                // device-plugins/ is fixed whatever --root-dir says
	"/var/log/containers",             // the kubelet's symlinks to container logs
	"/var/lib/cni",                    // libcni's results cache (containerd 1.6 does not configure it)
	"/var/log/pods",                   // only if podLogsDir is ignored
	"/etc/cni",                        // only if a plugin writes its default config directory
	"/opt/cni",                        // idem for the default binary directory
	"/opt/containerd",                 // containerd's opt plugin default
	"/var/lib/containerd",             // containerd's default root, if anything falls back to it
	"/var/lib/kubelet/device-plugins", // for a machine that has /var/lib/kubelet but not this
}

// CacheDir is where built binaries and images are kept by version:
// $REMOCAL_CLUSTER_CACHE, or /var/cache/remocal-cluster.
func CacheDir() string {
	if d := os.Getenv("REMOCAL_CLUSTER_CACHE"); d != "" {
		return d
	}
	return "/var/cache/remocal-cluster"
}

// Paths under StateDir and RunDir.
func pkiDir() string          { return filepath.Join(StateDir, "pki") }
func logDir() string          { return filepath.Join(StateDir, "logs") }
func etcdDataDir() string     { return filepath.Join(StateDir, "etcd") }
func kubeletRoot() string     { return filepath.Join(StateDir, "kubelet") }
func podLogsDir() string      { return filepath.Join(StateDir, "pod-logs") }
func cniConfDir() string      { return filepath.Join(StateDir, "cni", "net.d") }
func cniDataDir() string      { return filepath.Join(StateDir, "cni", "networks") }
func ctrdRoot() string        { return filepath.Join(StateDir, "containerd") }
func ctrdState() string       { return filepath.Join(RunDir, "containerd") }
func ctrdSocket() string      { return filepath.Join(RunDir, "containerd", "containerd.sock") }
func confDir() string         { return filepath.Join(StateDir, "conf") }
func pidDir() string          { return filepath.Join(RunDir, "pids") }
func journalPath() string     { return filepath.Join(StateDir, "journal.json") }
func adminKubeconfig() string { return filepath.Join(StateDir, "admin.kubeconfig") }

// StaticPodDir is the kubelet's static pod directory: a manifest a test
// writes there runs as a static pod of the node (with a mirror pod in the
// API), as control-plane components do on kubeadm clusters.
func StaticPodDir() string { return filepath.Join(StateDir, "static-pods") }
