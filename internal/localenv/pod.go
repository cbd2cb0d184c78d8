package localenv

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/remocal/remocal/internal/netns"
)

// Pod is one network namespace on the bridge, with at most one main process.
type Pod struct {
	Name      string // short name within the environment: "app", "redis", ...
	NetNSName string // as listed by `ip netns list`
	IP        netip.Addr
	// PID is the pod's main process itself, not a wrapper, so
	// /proc/PID/{root,environ,ns/net} show what the pod's program sees.
	// 0 if nothing runs in the pod.
	PID int
	// Hostname is what the pod's processes get from uname (each process
	// pod has its own UTS namespace).
	Hostname string

	env      *Env
	veth     string // its end on the bridge, in the cluster namespace
	proc     *os.Process
	exited   chan struct{}
	logsDone chan struct{}
	logR     *os.File

	mu      sync.Mutex
	waitErr error
	tail    []string // last lines of output, for error messages
}

const tailLines = 20

// closedChan stands in for the exit of a process that never ran.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// NS opens the pod's network namespace; the caller closes it. Holding it
// keeps the namespace alive even after Close.
func (p *Pod) NS() (*netns.NS, error) {
	return netns.Open(filepath.Join(netnsRunDir, p.NetNSName))
}

// Exited is closed once the pod's process has exited and been reaped. For a
// pod without a process it is already closed.
func (p *Pod) Exited() <-chan struct{} {
	if p.exited == nil {
		return closedChan
	}
	return p.exited
}

// Kill SIGKILLs the pod's process group and waits until the main process has
// been reaped, so /proc/PID is gone when it returns. It is how tests make a
// target disappear abruptly. Killing an exited or empty pod is a no-op.
func (p *Pod) Kill() error {
	if p.proc == nil {
		return nil
	}
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := syscall.Kill(-p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("localenv: kill pod %s (pid %d): %w", p.Name, p.PID, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("localenv: pod %s (pid %d) did not exit 10s after SIGKILL; is it stuck in the kernel (state D)?", p.Name, p.PID)
	}
}

// stop kills the process group even if the main process is gone (dnsmasq
// forks TCP workers), then waits for the output to drain so that nothing
// logs after Close.
func (p *Pod) stop() error {
	if p.proc == nil {
		return nil
	}
	syscall.Kill(-p.PID, syscall.SIGKILL)
	err := p.Kill()
	select {
	case <-p.logsDone:
	case <-time.After(2 * time.Second):
		// Something outside the group holds the pipe; stop reading.
		p.logR.Close()
		<-p.logsDone
	}
	return err
}

func (p *Pod) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

func (p *Pod) tailText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.tail) == 0 {
		return " (it printed nothing)"
	}
	return "; its last output:\n\t" + strings.Join(p.tail, "\n\t")
}

func (p *Pod) readLogs() {
	defer close(p.logsDone)
	defer p.logR.Close()
	br := bufio.NewReader(p.logR)
	for {
		line, err := br.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if line != "" && !isBindNoise(line) {
			p.mu.Lock()
			p.tail = append(p.tail, line)
			if len(p.tail) > tailLines {
				p.tail = p.tail[len(p.tail)-tailLines:]
			}
			p.mu.Unlock()
			p.env.logfNow("%s: %s", p.Name, line)
		}
		if err != nil {
			return
		}
	}
}

// isBindNoise recognises `ip netns exec` failing to bind /etc/netns/NAME/X
// over a missing /etc/X. That is expected here (the host has no
// /etc/inventory); the overlay in podScript provides those entries instead.
func isBindNoise(line string) bool {
	return strings.HasPrefix(line, "Bind "+netnsEtcDir+"/") && strings.HasSuffix(line, "failed: No such file or directory")
}

type procSpec struct {
	argv    []string
	env     []string // complete environment; nothing is inherited
	withEtc bool     // give the process the pod's /etc (see podScript)
}

// launch starts spec in the pod via `ip netns exec` and a shell that
// prepares the pod's hostname (and /etc) and then execs the program, so the
// PID we get from Start is the program's own PID.
func (e *Env) launch(p *Pod, spec procSpec) error {
	args := append([]string{"netns", "exec", p.NetNSName, e.tools.sh, "-c", e.podScript(p, spec.withEtc), p.Hostname}, spec.argv...)
	cmd := exec.Command(e.tools.ip, args...)
	cmd.Env = spec.env
	if !slices.ContainsFunc(cmd.Env, func(s string) bool { return strings.HasPrefix(s, "PATH=") }) {
		cmd.Env = append(cmd.Env, "PATH="+PodPATH)
	}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// The pod gets its own hostname without touching ours.
		Cloneflags: syscall.CLONE_NEWUTS,
		// Own group so Close can kill workers the program forks.
		Setpgid: true,
		// Survives the execs down to the program: a test binary that
		// crashes takes its pods with it. (Strictly it fires when the
		// forking thread exits; Go only retires a thread when a
		// goroutine exits locked to it, which netns.Enter does only
		// after failing to switch a thread back.)
		Pdeathsig: syscall.SIGKILL,
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("localenv: pipe for pod %s: %w", p.Name, err)
	}
	cmd.Stdout, cmd.Stderr = w, w

	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		r.Close()
		w.Close()
		return errors.New("localenv: environment is closed")
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		e.mu.Unlock()
		r.Close()
		return fmt.Errorf("localenv: start %s in pod %s: %w", filepath.Base(spec.argv[0]), p.Name, err)
	}
	p.proc = cmd.Process
	p.PID = cmd.Process.Pid
	p.exited = make(chan struct{})
	p.logsDone = make(chan struct{})
	p.logR = r
	e.mu.Unlock()

	go p.readLogs()
	go func() {
		err := cmd.Wait()
		// Let the output drain first, so that whoever sees Exited also
		// finds the process's last words in the tail. Bounded, because
		// a forked worker may still hold the pipe.
		select {
		case <-p.logsDone:
		case <-time.After(500 * time.Millisecond):
		}
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		if err == nil {
			err = errors.New("exit status 0")
		}
		e.logfNow("%s: %s (pid %d) exited: %v", p.Name, filepath.Base(spec.argv[0]), p.PID, err)
		close(p.exited)
	}()
	return nil
}

// podScript is the shell that runs between `ip netns exec` and the program.
//
// `ip netns exec` already gives the process a private mount namespace with
// /etc/netns/NAME/X bind-mounted over /etc/X, but only where /etc/X exists
// on the host: /etc/inventory does not, and creating it would change the
// host. So when withEtc is set the script lays the pod's files over /etc
// with an overlay instead, inside that private mount namespace. Overlayfs
// rejects a layer nested in another (/etc/netns/NAME inside /etc: ELOOP), so
// the files are copied to a tmpfs first; the tmpfs also holds a writable
// upper layer, making the pod's /etc writable like a container's without
// writes reaching the host. The tmpfs is mounted on a scratch directory only
// for as long as it takes to build the overlay, which keeps its own
// reference. The result is visible to the agent through /proc/PID/root/etc.
//
// The hostname is written through /proc so no hostname binary is needed.
func (e *Env) podScript(p *Pod, withEtc bool) string {
	var s strings.Builder
	s.WriteString("set -e\n")
	if withEtc {
		t := e.tools
		d := t.scratch
		fmt.Fprintf(&s, "%s -t tmpfs -o mode=0755,size=16m remocal-etc %s\n", t.mount, d)
		fmt.Fprintf(&s, "%s -a %s %s/lower\n", t.cp, filepath.Join(netnsEtcDir, p.NetNSName), d)
		fmt.Fprintf(&s, "%s %s/upper %s/work\n", t.mkdir, d, d)
		fmt.Fprintf(&s, "%s -t overlay -o lowerdir=%s/lower:/etc,upperdir=%s/upper,workdir=%s/work remocal-etc /etc\n", t.mount, d, d, d)
		fmt.Fprintf(&s, "%s %s\n", t.umount, d)
	}
	s.WriteString("printf '%s' \"$0\" > /proc/sys/kernel/hostname\n")
	s.WriteString("unset PWD OLDPWD\n") // set by sh, never by a pod spec
	s.WriteString("exec \"$@\"\n")
	return s.String()
}

// launchApp starts examples/inventory in p with the app pod's files and
// environment, overridden by extra.
func (e *Env) launchApp(p *Pod, extra map[string]string) error {
	if err := e.writeEtc(p); err != nil {
		return err
	}
	vars := map[string]string{
		"PATH":         PodPATH,
		"LISTEN_ADDR":  ":" + strconv.Itoa(AppPort),
		"SERVICE_NAME": AppServiceName,
		"GREETING":     AppGreeting,
		"REDIS_ADDR":   AppRedisAddr,
		"API_TOKEN":    AppAPIToken,
	}
	maps.Copy(vars, extra)
	var env []string
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, k+"="+vars[k])
	}
	return e.launch(p, procSpec{argv: []string{e.appBinary}, env: env, withEtc: true})
}

// writeEtc writes the pod's /etc files where `ip netns exec` looks for them.
func (e *Env) writeEtc(p *Pod) error {
	dir := filepath.Join(netnsEtcDir, p.NetNSName)
	e.mu.Lock()
	e.etcDirs = append(e.etcDirs, dir) // before creating it, for Close
	e.mu.Unlock()
	files := map[string]string{
		"resolv.conf": fmt.Sprintf("# pod %s (remocal localenv)\nnameserver %s\nsearch %s\noptions ndots:5\n",
			p.Hostname, DNSIP, AppSearchDomains),
		"hosts": fmt.Sprintf("# pod %s (remocal localenv)\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n"+
			"# not in cluster DNS, only in this pod's hosts file:\n%s\t%s\n",
			p.Hostname, p.IP, p.Hostname, HostsOnlyIP, HostsOnlyName),
		"hostname": p.Hostname + "\n",
		"inventory/config.json": fmt.Sprintf(`{
  "environment": "remote",
  "source": "%s:%s",
  "pod": %q,
  "features": {"bulk_import": true, "audit_log": false},
  "max_items": 100
}
`, p.NetNSName, AppConfigPath, p.Hostname),
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("localenv: pod files: %w", err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return fmt.Errorf("localenv: pod files: %w", err)
		}
	}
	return nil
}

// dnsmasqArgv makes dnsmasq a pure authoritative server for the demo names:
// no upstream, no host files, no config from the host, NXDOMAIN for other
// cluster.local names (so search-list expansion fails fast, as with CoreDNS).
func (e *Env) dnsmasqArgv() []string {
	argv := []string{
		e.tools.dnsmasq,
		"--keep-in-foreground",
		"--no-resolv",
		"--no-hosts",
		"--conf-file=/dev/null",
		"--bind-interfaces",
		"--listen-address=" + DNSIP.String(),
		"--port=" + strconv.Itoa(DNSPort),
		"--pid-file=", // none: concurrent environments would fight over /run/dnsmasq.pid
		"--log-facility=-",
		"--local=/cluster.local/",
		// Stay root: changing uid or gid makes the kernel clear the
		// parent-death signal, and a crashed test would leave dnsmasq
		// running (seen here when it dropped to nobody/dip).
		"--user=root",
		"--group=root",
	}
	records := map[string]netip.Addr{AppDNSName: AppIP, RedisDNSName: RedisIP, DNSDNSName: DNSIP}
	for _, name := range slices.Sorted(maps.Keys(records)) {
		argv = append(argv, "--host-record="+name+","+records[name].String())
	}
	return argv
}
