package kube

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/latency"
	"github.com/remocal/remocal/test/procwatch"
)

// BenchmarkExecToCommand measures the time from starting `remocal exec -t
// deployment/inventory` to the program running there (its first line of
// output), with no agent yet (a Job is created and started) and with the
// agent of an earlier session still running.
func BenchmarkExecToCommand(b *testing.B) {
	f := newFixture(b)
	f.deployInventory(1)
	run := func(b *testing.B) time.Duration {
		start := time.Now()
		p := procwatch.Start(b, f.remocalCmd(context.Background(), f.execArgs("deployment/inventory", []string{"--no-incoming"}, []string{f.probe(), "hostname"})...))
		p.Expect(p.Stdout, "hostname ")
		took := time.Since(start)
		if code := p.Wait(); code != 0 {
			b.Fatalf("exit %d", code)
		}
		return took
	}
	report := func(b *testing.B, durs []time.Duration) {
		m, err := latency.Parse("exec-ns "+latency.Summary(durs), "exec-ns")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(m["p50"]/1e6, "p50-ms")
		b.ReportMetric(m["max"]/1e6, "max-ms")
	}
	b.Run("cold-agent", func(b *testing.B) {
		var durs []time.Duration
		for b.Loop() {
			b.StopTimer()
			f.kubectl("delete", "jobs", "-l", "app.kubernetes.io/name=remocal-agent", "--wait=true")
			f.kubectl("wait", "--for=delete", "pods", "-l", "app.kubernetes.io/name=remocal-agent", "--timeout=60s")
			b.StartTimer()
			durs = append(durs, run(b))
		}
		report(b, durs)
	})
	b.Run("warm-agent", func(b *testing.B) {
		run(b) // the agent the iterations share
		var durs []time.Duration
		for b.Loop() {
			durs = append(durs, run(b))
		}
		report(b, durs)
	})
}

// BenchmarkRequestLatency compares an HTTP request to a ClusterIP Service
// made by a program on the laptop under remocal (through the agent and the
// kube port-forward) with the same request made from a pod in the cluster.
func BenchmarkRequestLatency(b *testing.B) {
	f := newFixture(b)
	f.deployInventory(1)
	n := strconv.Itoa(max(b.N, 200))
	url := "http://inventory/healthz"
	f.mustGet(url) // starts the toolbox pod
	b.ResetTimer()
	direct, err := f.c.Kubectl(f.ctx(), "-n", f.ns, "exec", cluster.ToolboxPod, "--", "/toolbox", "bench-get", "-n", n, url)
	if err != nil {
		b.Fatal(err)
	}
	r := f.exec("deployment/inventory", []string{"--no-incoming"}, f.probe(), "bench-get="+n+"+"+url)
	if r.Code != 0 {
		b.Fatalf("exit %d", r.Code)
	}
	for name, out := range map[string]string{"direct": direct, "remocal": r.Stdout} {
		m, err := latency.Parse(out, "get-ns")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(m["p50"]/1e3, name+"-p50-µs")
		b.ReportMetric(m["p90"]/1e3, name+"-p90-µs")
	}
}

// BenchmarkFollowTarget measures how long a running session is without its
// target when the target's pod is deleted: from the delete request until
// the session is connected to the agent of the replacement pod (which
// includes the Deployment creating and starting that pod).
func BenchmarkFollowTarget(b *testing.B) {
	f := newFixture(b)
	f.deployInventory(1)
	r := f.start("deployment/inventory", []string{"--no-incoming"}, f.probe(), "wait")
	r.Expect(r.Stdout, "waiting")
	var durs []time.Duration
	for b.Loop() {
		pod := f.pods("app=inventory")[0]
		start := time.Now()
		f.kubectl("delete", "pod", pod.name, "--wait=false")
		r.Expect(r.Stderr, "reconnected to the agent")
		durs = append(durs, time.Since(start))
	}
	m, err := latency.Parse("follow-ns "+latency.Summary(durs), "follow-ns")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(m["p50"]/1e6, "p50-ms")
	b.ReportMetric(m["max"]/1e6, "max-ms")
}
