package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/poll"
)

// These tests prove the harness gives remocal what its agent needs. They
// skip unless REMOCAL_CLUSTER is set (see cluster.EnvVar):
//
//	make cluster-test                                  # REMOCAL_CLUSTER=up
//	REMOCAL_CLUSTER=existing go test ./test/cluster/   # after make cluster-up
func TestMain(m *testing.M) { cluster.Main(m) }

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// toolboxPod is a pod running the toolbox image with args.
func toolboxPod(name string, args []string, extra string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels: {app: %s, remocal-test: "true"}
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - name: main
    image: %s
    imagePullPolicy: Never
    args: [%s]
%s`, name, name, cluster.ToolboxImage, strings.Join(q, ", "), extra)
}

// run starts a pod that runs the toolbox once and returns its output.
func runOnce(t *testing.T, c *cluster.Cluster, ns, name string, args ...string) (string, error) {
	t.Helper()
	ctx := ctxFor(t, 90*time.Second)
	if _, err := c.KubectlInput(ctx, toolboxPod(name, args, ""), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	var phase string
	err := poll.Until(ctx, 60*time.Second, func() error {
		out, err := c.Kubectl(ctx, "-n", ns, "get", "pod", name, "-o", "jsonpath={.status.phase}")
		if err != nil {
			return err
		}
		phase = out
		if phase == "Succeeded" || phase == "Failed" {
			return nil
		}
		return fmt.Errorf("pod %s is %s", name, phase)
	})
	if err != nil {
		t.Fatal(err)
	}
	logs, lerr := c.Kubectl(ctx, "-n", ns, "logs", name)
	if lerr != nil {
		t.Fatal(lerr)
	}
	if phase != "Succeeded" {
		return logs, fmt.Errorf("pod %s %s: %s", name, phase, logs)
	}
	return logs, nil
}

func apply(t *testing.T, c *cluster.Cluster, ns, manifest string) {
	t.Helper()
	if _, err := c.KubectlInput(ctxFor(t, 30*time.Second), manifest, "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}

// server starts a toolbox HTTP server pod (and a Service for it) and waits
// until it is Ready. addr is where it listens (":8080", or a loopback
// address only a process in its network namespace can reach).
func server(t *testing.T, c *cluster.Cluster, ns, name, text, addr string) {
	t.Helper()
	dial := addr
	if strings.HasPrefix(dial, ":") {
		dial = "127.0.0.1" + dial
	}
	apply(t, c, ns, toolboxPod(name, []string{"serve", "-addr", addr, "-text", text}, fmt.Sprintf(`    readinessProbe:
      exec: {command: ["/toolbox", "dial", "-timeout", "1s", %q]}
      periodSeconds: 1
`, dial))+fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata:
  name: %s
spec:
  selector: {app: %s}
  ports:
  - {port: 80, targetPort: 8080}
`, name, name))
	if err := c.WaitPod(ctxFor(t, 90*time.Second), ns, name, "Ready", 60*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestVersions(t *testing.T) {
	c := cluster.Require(t)
	out, err := c.Kubectl(ctxFor(t, 30*time.Second), "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, `"gitVersion": "`+cluster.KubernetesVersion+`"`); n != 2 {
		t.Fatalf("want client and server at %s:\n%s", cluster.KubernetesVersion, out)
	}
}

func TestPodRunsAndLogsAndExec(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	server(t, c, ns, "web", "hello", ":8080")
	ctx := ctxFor(t, 60*time.Second)
	logs, err := c.Kubectl(ctx, "-n", ns, "logs", "web")
	if err != nil || !strings.Contains(logs, "serving on [::]:8080") {
		t.Fatalf("logs: %q %v", logs, err)
	}
	out, err := c.Kubectl(ctx, "-n", ns, "exec", "web", "--", "/toolbox", "addrs")
	if err != nil || !strings.Contains(out, "eth0 10.244.0.") {
		t.Fatalf("exec addrs: %q %v", out, err)
	}
	// exec with standard input
	out, err = c.KubectlInput(ctx, "", "-n", ns, "exec", "web", "--", "/toolbox", "get", "http://127.0.0.1:8080/")
	if err != nil || !strings.HasPrefix(out, "hello web") {
		t.Fatalf("exec get: %q %v", out, err)
	}
}

func TestDNS(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	server(t, c, ns, "named", "x", ":8080")
	svcIP, err := c.Kubectl(ctxFor(t, 10*time.Second), "-n", ns, "get", "svc", "named", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct{ name, want string }{
		{"kubernetes.default", cluster.APIServiceIP},                   // through the search path
		{"kubernetes.default.svc.cluster.local", cluster.APIServiceIP}, // fully qualified
		{"named", svcIP}, // a short name in the pod's namespace
		{"named." + ns + ".svc.cluster.local", svcIP},                    // its full name
		{"kube-dns.kube-system.svc.cluster.local", cluster.DNSServiceIP}, // another namespace
	} {
		out, err := runOnce(t, c, ns, fmt.Sprintf("lookup-%d", i), "lookup", tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != tc.want {
			t.Errorf("lookup %s: got %q, want %s", tc.name, out, tc.want)
		}
	}
}

func TestClusterIPService(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	server(t, c, ns, "backend", "through-service", ":8080")
	// From a pod through the Service's name and ClusterIP (kube-proxy).
	// A brand-new ClusterIP can take a moment to be programmed: retry,
	// each try a new pod with a new connection.
	var out string
	ctx := ctxFor(t, 120*time.Second)
	err := poll.Until(ctx, 60*time.Second, func() error {
		name := fmt.Sprintf("client-%d", time.Now().UnixNano()%100000)
		var err error
		out, err = runOnce(t, c, ns, name, "get", "-timeout", "3s", "http://backend."+ns+"/")
		return err
	})
	if err != nil || !strings.HasPrefix(out, "through-service backend") {
		t.Fatalf("GET through the Service: %q %v", out, err)
	}
	// From the node too (kube-proxy's output chain).
	ip, err := c.Kubectl(ctx, "-n", ns, "get", "svc", "backend", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err)
	}
	err = poll.Until(ctx, 30*time.Second, func() error {
		cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		resp, err := cl.Get("http://" + ip + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out = string(b)
		return nil
	})
	if err != nil || !strings.HasPrefix(out, "through-service backend") {
		t.Fatalf("GET %s from the node: %q %v", ip, out, err)
	}
}

func TestPortForward(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	server(t, c, ns, "pf", "forwarded", ":8080")
	ctx := ctxFor(t, 60*time.Second)
	for _, target := range []string{"pod/pf", "svc/pf"} {
		port := 8080
		if target == "svc/pf" {
			port = 80
		}
		addr, stop, err := c.PortForward(ctx, ns, target, port)
		if err != nil {
			t.Fatal(err)
		}
		cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
		for i := 0; i < 3; i++ { // several requests over the one forward
			resp, err := cl.Get("http://" + addr + "/")
			if err != nil {
				stop()
				t.Fatalf("%s: %v", target, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasPrefix(string(b), "forwarded pf") {
				t.Fatalf("%s: got %q", target, b)
			}
		}
		stop()
	}
}

func containerID(t *testing.T, c *cluster.Cluster, ns, pod string) string {
	t.Helper()
	id, err := c.Kubectl(ctxFor(t, 10*time.Second), "-n", ns, "get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].containerID}")
	if err != nil || !strings.HasPrefix(id, "containerd://") {
		t.Fatalf("container ID of %s: %q %v", pod, id, err)
	}
	return strings.TrimPrefix(id, "containerd://")
}

// An ephemeral container that targets a container shares its process
// namespace: remocal's `agent.ephemeral` mode.
func TestEphemeralContainerTargetsProcessNamespace(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	server(t, c, ns, "target", "eph", "127.0.0.1:9090")
	ctx := ctxFor(t, 120*time.Second)
	// No -i: `kubectl debug -i` can lose output when stdin closes early;
	// read the ephemeral container's log once it has finished instead.
	if _, err := c.Kubectl(ctx, "-n", ns, "debug", "target", "--image="+cluster.ToolboxImage, "--image-pull-policy=Never",
		"--target=main", "--container=dbg", "--profile=general", "--", "/toolbox", "ps"); err != nil {
		t.Fatal(err)
	}
	err := poll.Until(ctx, 60*time.Second, func() error {
		out, err := c.Kubectl(ctx, "-n", ns, "get", "pod", "target", "-o", `jsonpath={.status.ephemeralContainerStatuses[?(@.name=="dbg")].state.terminated.exitCode}`)
		if err != nil {
			return err
		}
		if out == "" {
			return fmt.Errorf("ephemeral container dbg has not finished")
		}
		if out != "0" {
			return fmt.Errorf("ephemeral container dbg exited %s", out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	logs, err := c.Kubectl(ctx, "-n", ns, "logs", "target", "-c", "dbg")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "/toolbox serve -addr 127.0.0.1:9090 -text eph") {
		t.Fatalf("the ephemeral container does not see the target's process:\n%s", logs)
	}
}

// A hostPID pod with NET_ADMIN and SYS_ADMIN finds another pod's process by
// its container ID (scanning /proc/*/cgroup) and enters its network
// namespace: remocal's default agent Job. The target listens on loopback
// only, so only a process inside its namespace can reach it.
func TestHostPIDJobEntersPodNetns(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	server(t, c, ns, "target", "server-in-netns", "127.0.0.1:9090")
	id := containerID(t, c, ns, "target")
	apply(t, c, ns, fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: agent
spec:
  backoffLimit: 0
  ttlSecondsAfterFinished: 60
  template:
    metadata:
      labels: {remocal-test: "true"}
    spec:
      hostPID: true
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: agent
        image: %s
        imagePullPolicy: Never
        args: ["netns", "-container", %q, "--", "get", "http://127.0.0.1:9090/"]
        securityContext:
          capabilities:
            add: [NET_ADMIN, SYS_ADMIN]
`, cluster.ToolboxImage, id))
	ctx := ctxFor(t, 120*time.Second)
	if _, err := c.Kubectl(ctx, "-n", ns, "wait", "job/agent", "--for=condition=Complete", "--timeout=90s"); err != nil {
		logs, _ := c.Kubectl(ctx, "-n", ns, "logs", "job/agent")
		t.Fatalf("%v\njob logs:\n%s", err, logs)
	}
	logs, err := c.Kubectl(ctx, "-n", ns, "logs", "job/agent")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(logs, "server-in-netns target") {
		t.Fatalf("job output %q: it did not reach the target's loopback", logs)
	}
}

// The egress guard drops pod traffic bound anywhere off the pod bridge.
// To make sure this test can never send a packet off the machine even if
// the guard were broken, the outside address (TEST-NET-3, RFC 5737) is
// routed to a bridge with no ports for the duration: the route lookup
// proves the packet would be forwarded off the pod network, and the
// guard's counter proves the guard (not the sink) dropped it.
func TestEgressGuardBlocksOutsideAddresses(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	const outside = "203.0.113.7"
	ctx := ctxFor(t, 120*time.Second)
	sink := "rmc-sink0"
	mustRun := func(args ...string) string {
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	mustRun("ip", "link", "add", sink, "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", sink).Run() })
	mustRun("ip", "link", "set", sink, "up")
	mustRun("ip", "route", "add", outside+"/32", "dev", sink)
	route := mustRun("ip", "route", "get", outside, "from", "10.244.0.200", "iif", cluster.CNIBridge)
	if !strings.Contains(route, "dev "+sink) {
		t.Fatalf("refusing to test: %s is not routed to the sink: %s", outside, route)
	}
	before, err := cluster.GuardDrops(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runOnce(t, c, ns, "escape", "dial", "-timeout", "2s", outside+":80")
	if err == nil {
		t.Fatalf("a pod reached %s: %s", outside, out)
	}
	after, err := cluster.GuardDrops(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("the dial failed (%v) but the guard dropped nothing (%d -> %d)", err, before, after)
	}
	t.Logf("dial %s failed as it must; the guard dropped %d packets", outside, after-before)
}

// make images: remocal's agent image and the example images, built without
// a container engine, imported into the cluster, run as pods.
func TestRemocalImages(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	ctx := ctxFor(t, 180*time.Second)
	imgs, err := cluster.BuildImages(ctx, cluster.ImageOptions{OutDir: t.TempDir(), Tag: "test", Version: "test"}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, i := range imgs {
		if i.Path == "" {
			t.Logf("%s skipped: %s", i.Name, i.Note)
			continue
		}
		names[i.Name] = i.Path
	}
	have, err := c.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for n := range names {
		if !contains(have, n) {
			t.Fatalf("%s was not imported into the cluster (images: %v)", n, have)
		}
	}
	pod := func(name, image string, args []string, probe bool) {
		spec := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels: {remocal-test: "true"}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: %s
    imagePullPolicy: Never
`, name, image)
		if len(args) > 0 {
			q := make([]string, len(args))
			for i, a := range args {
				q[i] = fmt.Sprintf("%q", a)
			}
			spec += "    args: [" + strings.Join(q, ", ") + "]\n"
		}
		if probe {
			spec += "    readinessProbe:\n      tcpSocket: {port: 8080}\n      periodSeconds: 1\n"
		}
		apply(t, c, ns, spec)
	}
	get := func(pod, path string) string {
		ip, err := c.Kubectl(ctx, "-n", ns, "get", "pod", pod, "-o", "jsonpath={.status.podIP}")
		if err != nil {
			t.Fatal(err)
		}
		cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
		resp, err := cl.Get("http://" + ip + ":8080" + path)
		if err != nil {
			t.Fatalf("GET %s on %s: %v", path, pod, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	pod("agent", cluster.AgentImageRepo+":test", []string{"--help"}, false)
	pod("inventory", cluster.InventoryImageRepo+":test", nil, true)
	if err := c.WaitPod(ctx, ns, "agent", "complete", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if out, _ := c.Kubectl(ctx, "-n", ns, "logs", "agent"); !strings.Contains(out, "network namespace") {
		t.Fatalf("remocal agent --help in the agent image: %q", out)
	}
	if err := c.WaitPod(ctx, ns, "inventory", "Ready", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if out := get("inventory", "/"); !strings.Contains(out, "inventory on inventory") {
		t.Fatalf("inventory GET /: %q", out)
	}
	if _, ok := names[cluster.PyServiceImageRepo+":test"]; ok {
		pod("pyservice", cluster.PyServiceImageRepo+":test", nil, true)
		if err := c.WaitPod(ctx, ns, "pyservice", "Ready", 60*time.Second); err != nil {
			t.Fatal(err)
		}
		if out := get("pyservice", "/"); !strings.Contains(out, `"hostname": "pyservice"`) {
			t.Fatalf("pyservice GET /: %q", out)
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// API aggregation with front-proxy identity: what remocal's operator (an
// aggregated API server) relies on. The apiserver proxies to the backend
// with the front-proxy client certificate and the caller's identity in
// X-Remote-* headers.
func TestAggregatedAPISeesFrontProxyIdentity(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	ctx := ctxFor(t, 120*time.Second)
	group := strings.ReplaceAll(ns, "-", "") + ".remocal.test"
	apply(t, c, ns, toolboxPod("agg", []string{"aggserve", "-addr", ":8443"}, `    readinessProbe:
      tcpSocket: {port: 8443}
      periodSeconds: 1
`)+`---
apiVersion: v1
kind: Service
metadata:
  name: agg
spec:
  selector: {app: agg}
  ports:
  - {port: 443, targetPort: 8443}
`)
	if err := c.WaitPod(ctx, ns, "agg", "Ready", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, fmt.Sprintf(`apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1.%s
spec:
  group: %s
  version: v1
  service: {namespace: %s, name: agg, port: 443}
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 1000
  versionPriority: 15
`, group, group, ns)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.Kubectl(context.Background(), "delete", "apiservice", "v1."+group, "--wait=false") })
	if _, err := c.Kubectl(ctx, "wait", "apiservice/v1."+group, "--for=condition=Available", "--timeout=60s"); err != nil {
		st, _ := c.Kubectl(ctx, "get", "apiservice", "v1."+group, "-o", "yaml")
		t.Fatalf("%v\n%s", err, st)
	}
	out, err := c.Kubectl(ctx, "get", "--raw", "/apis/"+group+"/v1/whoami")
	if err != nil {
		t.Fatal(err)
	}
	var who struct {
		User     string   `json:"user"`
		Groups   []string `json:"groups"`
		ClientCN string   `json:"clientCN"`
		IssuerCN string   `json:"issuerCN"`
	}
	if err := json.Unmarshal([]byte(out), &who); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if who.User != "remocal-admin" || !contains(who.Groups, "system:masters") ||
		who.ClientCN != "front-proxy-client" || who.IssuerCN != "remocal-front-proxy-ca" {
		t.Fatalf("the backend saw %+v", who)
	}
}

func TestCustomResources(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	ctx := ctxFor(t, 60*time.Second)
	group := strings.ReplaceAll(ns, "-", "") + ".remocal.test"
	if err := c.Apply(ctx, fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.%[1]s
spec:
  group: %[1]s
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
`, group)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.Kubectl(context.Background(), "delete", "crd", "widgets."+group, "--wait=false") })
	if _, err := c.Kubectl(ctx, "wait", "crd/widgets."+group, "--for=condition=Established", "--timeout=30s"); err != nil {
		t.Fatal(err)
	}
	err := poll.Until(ctx, 20*time.Second, func() error {
		_, err := c.KubectlInput(ctx, fmt.Sprintf("apiVersion: %s/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 3}\n", group), "-n", ns, "apply", "-f", "-")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Kubectl(ctx, "-n", ns, "get", "widgets."+group, "w", "-o", "jsonpath={.spec.size}")
	if err != nil || out != "3" {
		t.Fatalf("widget: %q %v", out, err)
	}
}
