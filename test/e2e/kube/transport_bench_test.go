package kube

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/latency"
	"github.com/remocal/remocal/test/procwatch"
)

// bulkBytes is the download of BenchmarkTransport: 256 MiB.
const bulkBytes = 256 << 20

// BenchmarkTransport measures, in one run, the same requests to the
// inventory pod by four clients: a pod in the cluster (direct), a program
// on the laptop through a bare `kubectl port-forward` to the pod (the
// transport's own limit: the apiserver's WebSocket-tunnelled SPDY and the
// kubelet), a program on the laptop under `remocal exec` (that
// transport, the agent and the pod network), and a program under
// `remocal exec` in a devcontainer pod, which reaches the agent directly
// over the pod network (remocal-direct: TLS, the agent and the pod
// network). It reports a keep-alive GET's p50 and p99 and a 256 MiB
// download's speed for each, and the ratios of remocal to the
// port-forward and of both remocal clients to the pod
// (docs/performance.md).
func BenchmarkTransport(b *testing.B) {
	f := newFixture(b)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	f.mustGet("http://inventory/healthz") // starts the toolbox pod
	pf := f.portForward(pod.name, 8080)
	f.startDevcontainer()
	gets := strconv.Itoa(max(b.N, 2000))
	b.ResetTimer()

	healthz := map[string]string{
		"direct":         f.fromPod(b, "-n", gets, "http://inventory/healthz"),
		"pf":             f.fromLaptop(b, "bench-get="+gets+"+http://"+pf+"/healthz"),
		"remocal":        f.underRemocal(b, "bench-get="+gets+"+http://inventory/healthz"),
		"remocal-direct": f.fromDevcontainer(b, "bench-get="+gets+"+http://inventory/healthz"),
	}
	p50, p99 := map[string]float64{}, map[string]float64{}
	for name, out := range healthz {
		m := mustParse(b, out, "get-ns")
		p50[name], p99[name] = m["p50"]/1e3, m["p99"]/1e3
		b.ReportMetric(p50[name], name+"-get-p50-µs")
		b.ReportMetric(p99[name], name+"-get-p99-µs")
	}
	b.ReportMetric(p50["remocal"]/p50["pf"], "get-p50-remocal/pf")
	b.ReportMetric(p50["remocal"]/p50["direct"], "get-p50-remocal/direct")
	b.ReportMetric(p50["remocal-direct"]/p50["direct"], "get-p50-remocal-direct/direct")
	b.ReportMetric(p99["remocal-direct"]/p99["direct"], "get-p99-remocal-direct/direct")

	bulk := fmt.Sprintf("http://%%s/bytes/%d", bulkBytes)
	downloads := map[string]string{
		"direct":         f.fromPod(b, "-n", "3", fmt.Sprintf(bulk, "inventory")),
		"pf":             f.fromLaptop(b, "bench-get=3+"+fmt.Sprintf(bulk, pf)),
		"remocal":        f.underRemocal(b, "bench-get=3+"+fmt.Sprintf(bulk, "inventory")),
		"remocal-direct": f.fromDevcontainer(b, "bench-get=3+"+fmt.Sprintf(bulk, "inventory")),
	}
	mbps := map[string]float64{}
	for name, out := range downloads {
		mbps[name] = bulkBytes / (mustParse(b, out, "get-ns")["p50"] / 1e9) / 1e6
		b.ReportMetric(mbps[name], name+"-download-MB/s")
	}
	b.ReportMetric(mbps["remocal"]/mbps["pf"], "download-remocal/pf")
	b.ReportMetric(mbps["remocal"]/mbps["direct"], "download-remocal/direct")
	b.ReportMetric(mbps["remocal-direct"]/mbps["direct"], "download-remocal-direct/direct")
}

// BenchmarkNewConnections sends GETs on a new connection each from a
// program under `remocal exec` (a new stream through the agent per
// connection) and reports their p50 and p99 (of the last batch) and how
// many failed in all (a 5 s dial timeout; goal: none). `-benchtime
// 10000x` is the issue's 10 000, in batches that each fit a program's
// patience (procwatch.Patience).
func BenchmarkNewConnections(b *testing.B) {
	f := newFixture(b)
	f.deployInventory(1)
	const batch = 2000
	total := max(b.N, 1000)
	b.ResetTimer()
	failedAll := 0
	var m map[string]float64
	for done := 0; done < total; done += batch {
		n := min(batch, total-done)
		out := f.underRemocal(b, "bench-newconn="+strconv.Itoa(n)+"+http://inventory/healthz")
		m = mustParse(b, out, "newconn-ns")
		failed := regexp.MustCompile(`newconn-failed (\d+) of`).FindStringSubmatch(out)
		if failed == nil {
			b.Fatalf("no failure count in %q", out)
		}
		nf, _ := strconv.Atoi(failed[1])
		failedAll += nf
	}
	b.ReportMetric(m["p50"]/1e3, "p50-µs")
	b.ReportMetric(m["p99"]/1e3, "p99-µs")
	b.ReportMetric(float64(failedAll), "failed")
}

func mustParse(b *testing.B, out, name string) map[string]float64 {
	b.Helper()
	m, err := latency.Parse(out, name)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// fromPod runs the toolbox's bench-get in the cluster.
func (f *fixture) fromPod(b *testing.B, args ...string) string {
	b.Helper()
	out, err := f.c.Kubectl(f.ctx(), append([]string{"-n", f.ns, "exec", cluster.ToolboxPod, "--", "/toolbox", "bench-get"}, args...)...)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// fromLaptop runs the probe on the laptop without remocal.
func (f *fixture) fromLaptop(b *testing.B, check string) string {
	b.Helper()
	r := procwatch.Run(b, f.local.Command(context.Background(), f.probe(), check))
	if r.Code != 0 {
		b.Fatalf("probe %s: exit %d\n%s%s", check, r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// underRemocal runs the probe on the laptop under `remocal exec` on the
// inventory Deployment.
func (f *fixture) underRemocal(b *testing.B, check string) string {
	b.Helper()
	r := f.exec("deployment/inventory", []string{"--no-incoming"}, f.probe(), check)
	if r.Code != 0 {
		b.Fatalf("remocal exec probe %s: exit %d\n%s%s", check, r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// fromDevcontainer runs the probe under `remocal exec` in the
// devcontainer pod (startDevcontainer), on the inventory Deployment: the
// direct transport.
func (f *fixture) fromDevcontainer(b *testing.B, check string) string {
	b.Helper()
	r := procwatch.Run(b, f.inDevcontainer("deployment/inventory", []string{"--no-incoming"}, "/probe", check))
	if r.Code != 0 {
		b.Fatalf("remocal exec probe %s in the devcontainer: exit %d\n%s%s", check, r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "connected to the agent directly") {
		b.Fatalf("remocal in the devcontainer did not reach the agent directly:\n%s", r.Stderr)
	}
	return r.Stdout
}

var forwarding = regexp.MustCompile(`Forwarding from (127\.0\.0\.1:\d+) ->`)

// portForward runs `kubectl port-forward` to the pod's port on the laptop
// and returns the local address; it stops with the benchmark.
func (f *fixture) portForward(pod string, port int) string {
	f.t.Helper()
	cmd := f.local.Command(context.Background(), f.c.KubectlPath, "--kubeconfig", f.kubeconfig, "-n", f.ns,
		"port-forward", "pod/"+pod, fmt.Sprintf(":%d", port))
	p := procwatch.Start(f.t, cmd)
	return forwarding.FindStringSubmatch(p.Expect(p.Stdout, "Forwarding from 127.0.0.1:"))[1]
}
