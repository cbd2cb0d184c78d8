package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/interpose/keeper"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/daemonclient"
	"github.com/remocal/remocal/server/sessionhost"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/procwatch"
)

// BenchmarkSessionMemory reports what the processes remocal runs on the
// laptop for one session hold, idle and after a 256 MiB download through
// the session. PSS counts the pages the processes share (the binary's
// text, mapped by all of them) once between them, as the machine pays for
// them; RSS counts them in each. The agent of a local target is reported
// apart: on Kubernetes it runs in the pod.
//
// exec: `remocal exec` (the supervisor) and its keeper. daemon: the IDE
// path, one session started through a real `remocal daemon`: the daemon,
// the session host it starts (the program's supervisor runs in it) and the
// program's keeper.
func BenchmarkSessionMemory(b *testing.B) {
	env := envtest.New(b)
	probe := built(b, "probe")
	addr := serveBytes(b, env, 256<<20, 9101)
	b.Run("exec", func(b *testing.B) {
		var m sessionMemory
		for range b.N {
			cmd := benchExec(b, env, probe, "wait", "download="+addr, "wait")
			m.add(b, env, cmd, func() []namedProc {
				procs := sessionProcs(b, cmd.Process.Pid)
				return []namedProc{{"supervisor", procs[0]}, {"keeper", procs[1]}}
			})
		}
		m.report(b)
	})
	b.Run("daemon", func(b *testing.B) {
		var m sessionMemory
		for range b.N {
			d := startBenchDaemon(b, env)
			cmd := d.program(b, env, probe, "wait", "download="+addr, "wait")
			m.add(b, env, cmd, func() []namedProc {
				host := d.host(b)
				return []namedProc{{"daemon", d.pid()}, {"host", host}, {"keeper", keeperOf(b, host)}}
			})
			d.stop(b)
		}
		m.report(b)
	})
}

type namedProc struct {
	name string
	pid  int
}

// sessionMemory adds up what BenchmarkSessionMemory measures, in MiB.
type sessionMemory struct {
	n                                             int
	idle, loaded, idleRSS, loadedRSS, peak, agent float64
	idleSet, loadedSet, idleAnon, loadedAnon      float64
	parts                                         map[string]float64 // loaded PSS by process
	order                                         []string
}

// add runs cmd, the probe in a session; procs names the session's
// processes once the program runs.
func (m *sessionMemory) add(b *testing.B, env *localenv.Env, cmd *exec.Cmd, procs func() []namedProc) {
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
	named := procs()
	var pids []int
	for _, p := range named {
		pids = append(pids, p.pid)
	}
	pss, rss, _ := memoryOf(b, pids...)
	m.idle, m.idleRSS, m.idleSet = m.idle+pss, m.idleRSS+rss, m.idleSet+residentOnce(b, pids...)
	m.idleAnon += anonymousOf(b, pids...)
	agentPSS, _, _ := memoryOf(b, localAgent(b, env.App.PID))
	m.agent += agentPSS
	io.WriteString(stdin, "\n")
	next("waiting")
	pss, rss, hwm := memoryOf(b, pids...)
	m.loaded, m.loadedRSS, m.peak = m.loaded+pss, m.loadedRSS+rss, m.peak+hwm
	m.loadedSet += residentOnce(b, pids...)
	m.loadedAnon += anonymousOf(b, pids...)
	if m.parts == nil {
		m.parts = map[string]float64{}
	}
	for _, p := range named {
		part, _, _ := memoryOf(b, p.pid)
		if _, ok := m.parts[p.name]; !ok {
			m.order = append(m.order, p.name)
		}
		m.parts[p.name] += part
	}
	m.n++
	stdin.Close()
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
}

func (m *sessionMemory) report(b *testing.B) {
	n := float64(m.n)
	b.ReportMetric(m.idle/n, "idle-pss-MiB")
	b.ReportMetric(m.idleRSS/n, "idle-rss-MiB")
	b.ReportMetric(m.idleSet/n, "idle-once-MiB")
	b.ReportMetric(m.loadedSet/n, "loaded-once-MiB")
	b.ReportMetric(m.idleAnon/n, "idle-anon-MiB")
	b.ReportMetric(m.loadedAnon/n, "loaded-anon-MiB")
	b.ReportMetric(m.loaded/n, "loaded-pss-MiB")
	b.ReportMetric(m.loadedRSS/n, "loaded-rss-MiB")
	b.ReportMetric(m.peak/n, "peak-rss-MiB")
	for _, name := range m.order {
		b.ReportMetric(m.parts[name]/n, "loaded-"+name+"-pss-MiB")
	}
	b.ReportMetric(m.agent/n, "local-agent-pss-MiB")
}

// benchDaemon is a `remocal daemon` with one session on the local target.
type benchDaemon struct {
	proc   *procwatch.Proc
	client *daemonclient.Client
	folder string
	res    daemon.SessionStartResult
}

func startBenchDaemon(b *testing.B, env *localenv.Env) *benchDaemon {
	dir, err := os.MkdirTemp("", "rmcd") // unix socket paths are short
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "d.sock")
	p := procwatch.Start(b, exec.Command(built(b, "remocal"), "daemon", "--socket", socket, "--idle-timeout", "0"))
	p.Expect(p.Stderr, "daemon listening")
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	c, err := daemonclient.Dial(ctx, socket, daemonclient.Options{Name: "bench", Folders: []string{dir}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return &benchDaemon{proc: p, client: c, folder: dir}
}

// program starts a session for argv and returns the command that runs it
// in the session, as an IDE would.
func (d *benchDaemon) program(b *testing.B, env *localenv.Env, argv ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	params := daemon.SessionStartParams{Target: fmt.Sprintf("pid/%d", env.App.PID), WorkspaceFolder: d.folder,
		Incoming: config.IncomingOff, Program: &daemon.Program{Path: argv[0], Args: argv[1:]}}
	if err := d.client.Call(ctx, daemon.MethodSessionStart, params, &d.res); err != nil {
		b.Fatalf("session/start: %v", err)
	}
	if len(d.res.Wrapper) == 0 {
		b.Fatalf("no wrapper for the static probe: %+v", d.res)
	}
	cmd := exec.Command(d.res.Wrapper[0], d.res.Wrapper[1:]...)
	cmd.Env = os.Environ()
	for k, v := range d.res.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

func (d *benchDaemon) pid() int { return d.proc.Cmd.Process.Pid }

// host is the daemon's one session host.
func (d *benchDaemon) host(b *testing.B) int {
	var hosts []int
	for _, pid := range children(b, d.pid()) {
		if slices.Contains(cmdline(pid), sessionhost.Arg) {
			hosts = append(hosts, pid)
		}
	}
	if len(hosts) != 1 {
		b.Fatalf("session hosts of the daemon %d: %v, want one", d.pid(), hosts)
	}
	return hosts[0]
}

func (d *benchDaemon) stop(b *testing.B) {
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	if err := d.client.Call(ctx, daemon.MethodSessionStop, daemon.SessionParams{ID: d.res.Session.ID}, nil); err != nil {
		b.Errorf("session/stop: %v", err)
	}
	d.client.Close()
	d.proc.Cmd.Process.Signal(syscall.SIGTERM)
	d.proc.Wait()
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

// sessionProcs is the supervisor and its keeper.
func sessionProcs(b *testing.B, supervisor int) []int {
	return []int{supervisor, keeperOf(b, supervisor)}
}

// keeperOf is the one keeper among the children of a supervisor (in a
// process group of its own).
func keeperOf(b *testing.B, supervisor int) int {
	var keepers []int
	for _, pid := range children(b, supervisor) {
		if args := cmdline(pid); args[0] == keeper.Name || args[1] == keeper.Arg {
			keepers = append(keepers, pid)
		}
	}
	if len(keepers) != 1 {
		b.Fatalf("keepers among the children of the supervisor %d: %v, want one", supervisor, keepers)
	}
	return keepers[0]
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

// children lists parent's children, those of every thread (a task's
// children file lists only what that thread started).
func children(b *testing.B, parent int) []int {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", parent))
	if err != nil || len(files) == 0 {
		b.Fatalf("no threads of %d: %v", parent, err)
	}
	var out []int
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(data)) {
			pid, _ := strconv.Atoi(field)
			out = append(out, pid)
		}
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

// anonymousOf is the memory of pids that is no file's (heap, stacks): what
// the system cannot reclaim short of swapping, in MiB. The rest of their
// resident memory is the remocal binary's pages, clean and shared with the
// page cache; how many of them are mapped depends on how much of the file
// is cached (the kernel maps up to 16 cached neighbours of each page a
// process touches).
func anonymousOf(b *testing.B, pids ...int) float64 {
	var sum float64
	for _, pid := range pids {
		rollup, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			b.Fatal(err)
		}
		sum += kib(rollup, "Anonymous:") / 1024
	}
	return sum
}

// residentOnce is the memory pids hold together, in MiB: every physical
// page any of them maps, counted once, whoever else maps it too. PSS gives
// a share of the remocal binary's pages to the local agent, which runs the
// same binary; with a Kubernetes target the agent runs in the pod and the
// laptop pays for those pages alone, which this counts.
func residentOnce(b *testing.B, pids ...int) float64 {
	pages := map[uint64]struct{}{}
	for _, pid := range pids {
		maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		if err != nil {
			b.Fatal(err)
		}
		pagemap, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(maps)), "\n") {
			if strings.HasSuffix(line, "[vsyscall]") {
				continue
			}
			var start, end uint64
			if _, err := fmt.Sscanf(line, "%x-%x", &start, &end); err != nil {
				b.Fatalf("%s: %v", line, err)
			}
			entries := make([]byte, (end-start)/4096*8)
			if _, err := pagemap.ReadAt(entries, int64(start/4096*8)); err != nil {
				b.Fatalf("pagemap of %d at %s: %v", pid, line, err)
			}
			for i := 0; i < len(entries); i += 8 {
				e := binary.LittleEndian.Uint64(entries[i:])
				if e&(1<<63) == 0 {
					continue // not present
				}
				pfn := e & (1<<55 - 1)
				if pfn == 0 {
					b.Fatal("pagemap shows no page frame numbers: run as root")
				}
				pages[pfn] = struct{}{}
			}
		}
		pagemap.Close()
	}
	return float64(len(pages)) * 4096 / (1 << 20)
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
