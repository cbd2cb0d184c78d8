package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/interpose/keeper"
	"github.com/remocal/remocal/test/envtest"
)

// BenchmarkSessionMemory reports what the processes remocal runs on the
// laptop for one `remocal exec` session hold: the supervisor (remocal
// exec itself) and the keeper, idle and after a 256 MiB download through
// the session. PSS counts the pages the processes share (the binary's
// text, mapped by both) once between them, as the machine pays for them;
// RSS counts them in each. The agent of a local target is reported apart:
// on Kubernetes it runs in the pod.
func BenchmarkSessionMemory(b *testing.B) {
	env := envtest.New(b)
	probe := built(b, "probe")
	addr := serveBytes(b, env, 256<<20, 9101)
	var idle, loaded, idleRSS, loadedRSS, peak, agent, keeperPSS float64
	for range b.N {
		cmd := benchExec(b, env, probe, "wait", "download="+addr, "wait")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		next := func(want string) {
			for lines.Scan() {
				if strings.Contains(lines.Text(), want) {
					return
				}
			}
			b.Fatalf("the probe ended before %q", want)
		}
		next("waiting")
		procs := sessionProcs(b, cmd.Process.Pid)
		pss, rss, _ := memoryOf(b, procs...)
		idle, idleRSS = idle+pss, idleRSS+rss
		agentPSS, _, _ := memoryOf(b, localAgent(b, env.App.PID))
		agent += agentPSS
		io.WriteString(stdin, "\n")
		next("waiting")
		pss, rss, hwm := memoryOf(b, procs...)
		loaded, loadedRSS, peak = loaded+pss, loadedRSS+rss, peak+hwm
		kp, _, _ := memoryOf(b, procs[1])
		keeperPSS += kp
		stdin.Close()
		io.Copy(io.Discard, stdout)
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	n := float64(b.N)
	b.ReportMetric(idle/n, "idle-pss-MiB")
	b.ReportMetric(idleRSS/n, "idle-rss-MiB")
	b.ReportMetric(loaded/n, "loaded-pss-MiB")
	b.ReportMetric(loadedRSS/n, "loaded-rss-MiB")
	b.ReportMetric(peak/n, "peak-rss-MiB")
	b.ReportMetric(keeperPSS/n, "loaded-keeper-pss-MiB")
	b.ReportMetric(agent/n, "local-agent-pss-MiB")
}

// serveBytes serves size bytes to each connection on port of the peer pod
// and returns its address.
func serveBytes(b *testing.B, env *localenv.Env, size, port int) string {
	ns, err := env.Peer.NS()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ns.Close() })
	addr := net.JoinHostPort(localenv.PeerIP.String(), strconv.Itoa(port))
	l, err := ns.Listen(b.Context(), "tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		chunk := make([]byte, 256<<10)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for sent := 0; sent < size; sent += len(chunk) {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
	}()
	return addr
}

// sessionProcs is the supervisor and its keeper (a child of the
// supervisor in a process group of its own).
func sessionProcs(b *testing.B, supervisor int) []int {
	procs := []int{supervisor}
	for _, pid := range children(b, supervisor) {
		if cmdline(pid)[1] == keeper.Arg {
			procs = append(procs, pid)
		}
	}
	if len(procs) != 2 {
		b.Fatalf("no keeper among the children of the supervisor %d", supervisor)
	}
	return procs
}

// localAgent is the agent remocal started for the local target pid.
func localAgent(b *testing.B, target int) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		args := cmdline(pid)
		if len(args) > 3 && args[1] == "agent" && args[2] == "--target-pid" && args[3] == strconv.Itoa(target) {
			return pid
		}
	}
	b.Fatalf("no agent for pid %d", target)
	return 0
}

func children(b *testing.B, parent int) []int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", parent, parent))
	if err != nil {
		b.Fatal(err)
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		pid, _ := strconv.Atoi(f)
		out = append(out, pid)
	}
	return out
}

func cmdline(pid int) []string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return append(strings.Split(strings.TrimRight(string(data), "\x00"), "\x00"), "")
}

// memoryOf adds up the PSS, RSS and peak RSS (VmHWM) of pids, in MiB.
func memoryOf(b *testing.B, pids ...int) (pss, rss, hwm float64) {
	for _, pid := range pids {
		rollup, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			b.Fatal(err)
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			b.Fatal(err)
		}
		pss += kib(rollup, "Pss:") / 1024
		rss += kib(rollup, "Rss:") / 1024
		hwm += kib(status, "VmHWM:") / 1024
	}
	return pss, rss, hwm
}

func kib(data []byte, field string) float64 {
	for _, line := range bytes.Split(data, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(field)); ok {
			v, _ := strconv.ParseFloat(strings.Fields(string(rest))[0], 64)
			return v
		}
	}
	return 0
}
