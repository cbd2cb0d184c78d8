package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/latency"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/procwatch"
)

// installOperator installs charts/remocal (one replica, this checkout's
// images) into a namespace of its own and removes it when b ends. Only
// one install may exist in the cluster (the chart's APIService and
// ClusterRoles have fixed names): run under the lock docs/cluster.md and
// docs/performance.md name.
func (f *fixture) installOperator(b *testing.B) string {
	b.Helper()
	ns := fmt.Sprintf("remocal-bench-op-%d", os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := f.c.Helm(ctx, "uninstall", "remocal", "--namespace", ns, "--wait", "--timeout=90s"); err != nil {
			b.Errorf("helm uninstall: %v", err)
		}
		if _, err := f.c.Kubectl(ctx, "delete", "namespace", ns, "--ignore-not-found", "--wait=false"); err != nil {
			b.Errorf("delete the operator's namespace: %v", err)
		}
	})
	start := time.Now()
	if _, err := f.c.Helm(ctx, "install", "remocal", filepath.Join(moduleRoot(b), "charts", "remocal"), "--namespace", ns, "--create-namespace",
		"--set", "image.tag="+version, "--set", "agent.image.tag="+version, "--set", "image.pullPolicy=Never", "--set", "replicas=1"); err != nil {
		b.Fatal(err)
	}
	// The agents are privileged (docs/operator.md, Install).
	if _, err := f.c.Kubectl(ctx, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=privileged"); err != nil {
		b.Fatal(err)
	}
	if _, err := f.c.Kubectl(ctx, "wait", "apiservice/v1alpha1.operator.remocal.dev", "--for=condition=Available", "--timeout=150s"); err != nil {
		b.Fatalf("the operator's API did not become available: %v", err)
	}
	b.Logf("operator installed and available in %s", time.Since(start).Round(100*time.Millisecond))
	return ns
}

// deleteAgents removes the agent Jobs in ns and waits for their pods.
func (f *fixture) deleteAgents(ns string) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"-n", ns, "delete", "jobs", "-l", "app.kubernetes.io/name=remocal-agent", "--wait=true"},
		{"-n", ns, "wait", "--for=delete", "pods", "-l", "app.kubernetes.io/name=remocal-agent", "--timeout=60s"},
	} {
		if _, err := f.c.Kubectl(ctx, args...); err != nil {
			f.t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
		}
	}
}

// BenchmarkOperator compares, in one run, the paths through the operator
// with the direct ones (the client creating its agent and reaching it by
// port-forward): the time from `remocal exec` to the program printing,
// with the agent cold or warm; and the latency of HTTP requests from a pod
// to the target, answered by the app itself (no session), and stolen (a
// whole-port steal) to a program on the laptop, directly and through the
// operator.
func BenchmarkOperator(b *testing.B) {
	f := newFixture(b)
	f.deployInventory(1)
	opNS := f.installOperator(b)
	footprint := func(b *testing.B) {
		for b.Loop() { // a reading, not a loop: b.Loop runs the function once
		}
		rss, ws := f.with(b).operatorMemory(opNS)
		b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
		b.ReportMetric(float64(ws)/(1<<20), "working-set-MiB")
	}
	b.Run("footprint/idle", footprint)
	defer b.Run("footprint/after", footprint)

	for _, mode := range []string{"direct", "operator"} {
		flag := "--operator=" + strconv.FormatBool(mode == "operator")
		agentsNS := f.ns
		if mode == "operator" {
			agentsNS = opNS
		}
		run := func(b *testing.B) time.Duration {
			start := time.Now()
			p := procwatch.Start(b, f.remocalCmd(context.Background(), f.execArgs("deployment/inventory", []string{"--no-incoming", flag}, []string{f.probe(), "hostname"})...))
			p.Expect(p.Stdout, "hostname ")
			took := time.Since(start)
			if code := p.Wait(); code != 0 {
				b.Fatalf("exit %d", code)
			}
			return took
		}
		b.Run("exec/"+mode+"/cold-agent", func(b *testing.B) {
			g := f.with(b)
			var durs []time.Duration
			for b.Loop() {
				b.StopTimer()
				g.deleteAgents(agentsNS)
				b.StartTimer()
				durs = append(durs, run(b))
			}
			reportDurations(b, durs)
		})
		b.Run("exec/"+mode+"/warm-agent", func(b *testing.B) {
			run(b)
			var durs []time.Duration
			for b.Loop() {
				durs = append(durs, run(b))
			}
			reportDurations(b, durs)
		})
	}

	b.Run("stolen-request", func(b *testing.B) {
		g := f.with(b)
		n := strconv.Itoa(max(b.N, 200))
		url := "http://inventory/healthz"
		g.mustGet(url) // starts the toolbox pod
		out := map[string]string{}
		var err error
		if out["pod-to-app"], err = g.c.Kubectl(g.ctx(), "-n", g.ns, "exec", cluster.ToolboxPod, "--", "/toolbox", "bench-get", "-n", n, url); err != nil {
			b.Fatal(err)
		}
		for _, mode := range []string{"direct", "operator"} {
			p := g.start("deployment/inventory", []string{"--steal", "--operator=" + strconv.FormatBool(mode == "operator")}, g.probe(), "serve-all=:8080")
			p.Expect(p.Stderr, "stealing port 8080")
			if body := g.mustGet(url); !strings.Contains(body, "local probe") {
				b.Fatalf("%s: the steal did not take the request: %q", mode, body)
			}
			if out["stolen-"+mode], err = g.c.Kubectl(g.ctx(), "-n", g.ns, "exec", cluster.ToolboxPod, "--", "/toolbox", "bench-get", "-n", n, url); err != nil {
				b.Fatal(err)
			}
			// SIGTERM reaches the program, which dies of it, and the
			// session ends with it, so the next one can steal the port.
			if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
				b.Fatal(err)
			}
			p.Wait()
		}
		for name, o := range out {
			m, err := latency.Parse(o, "get-ns")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(m["p50"]/1e3, name+"-p50-µs")
			b.ReportMetric(m["p90"]/1e3, name+"-p90-µs")
		}
	})
}

// operatorMemory is the operator container's RSS and working set, as the
// kubelet's summary reports them (what a memory limit is measured on).
func (f *fixture) operatorMemory(ns string) (rss, workingSet uint64) {
	f.t.Helper()
	pod := f.kubectlIn(ns, "get", "pods", "-l", "app.kubernetes.io/name=remocal-operator", "-o", "jsonpath={.items[0].metadata.name} {.items[0].spec.nodeName}")
	name, node, _ := strings.Cut(pod, " ")
	err := poll.Until(context.Background(), time.Minute, func() error {
		out, err := f.c.Kubectl(f.ctx(), "get", "--raw", "/api/v1/nodes/"+node+"/proxy/stats/summary")
		if err != nil {
			return err
		}
		var summary struct {
			Pods []struct {
				PodRef struct {
					Name, Namespace string
				}
				Containers []struct {
					Name   string
					Memory *struct {
						RSSBytes        uint64 `json:"rssBytes"`
						WorkingSetBytes uint64 `json:"workingSetBytes"`
					}
				}
			}
		}
		if err := json.Unmarshal([]byte(out), &summary); err != nil {
			return err
		}
		for _, p := range summary.Pods {
			if p.PodRef.Name != name || p.PodRef.Namespace != ns {
				continue
			}
			for _, c := range p.Containers {
				if c.Memory != nil && c.Memory.RSSBytes > 0 {
					rss, workingSet = c.Memory.RSSBytes, c.Memory.WorkingSetBytes
					return nil
				}
			}
		}
		return fmt.Errorf("the kubelet of %s reports no memory of %s/%s yet", node, ns, name)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return rss, workingSet
}

// kubectlIn runs kubectl in namespace ns.
func (f *fixture) kubectlIn(ns string, args ...string) string {
	f.t.Helper()
	out, err := f.c.Kubectl(f.ctx(), append([]string{"-n", ns}, args...)...)
	if err != nil {
		f.t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(out)
}

func reportDurations(b *testing.B, durs []time.Duration) {
	m, err := latency.Parse("exec-ns "+latency.Summary(durs), "exec-ns")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(m["p50"]/1e6, "p50-ms")
	b.ReportMetric(m["max"]/1e6, "max-ms")
}
