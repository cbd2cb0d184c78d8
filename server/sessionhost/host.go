package sessionhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.lsp.dev/jsonrpc2"
	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/bootstrap"
	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/interpose/session"
	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
)

// specTimeout bounds the wait for the daemon's start message.
const specTimeout = 30 * time.Second

// maxErrors bounds the problems a host remembers for Detail.
const maxErrors = 100

// host is the session host process's state.
type host struct {
	out  io.Writer // the host's own standard error
	conn jsonrpc2.Conn

	specs chan startParams
	stop  chan struct{}
	once  sync.Once

	mu sync.Mutex
	id string
	// describe names what the target resolves to now (conflicts,
	// reconnections): a Kubernetes session may follow it to a new pod.
	describe func() string
	// started is what the target resolved to when the session started,
	// where its programs took their environment and hostname.
	started  string
	sess     *session.Session
	ready    bool
	warnings []string // before ready
	errs     []string
	events   *queue[Event]
}

// Main runs the session host (os.Args[1] == Arg) and returns its exit
// status: 0 after a stop, 1 if the session could not start or failed, 2 if
// it was not started by a daemon.
func Main(args []string) int {
	out := os.Stderr
	if len(args) != 0 {
		fmt.Fprintf(out, "remocal: %s takes no arguments; the remocal daemon starts it\n", Arg)
		return 2
	}
	// Only what is handed over explicitly may reach the processes the host
	// starts: the agent must not keep the control connection open, and
	// only keepers write to the log descriptor.
	unix.CloseOnExec(controlFD)
	unix.CloseOnExec(logFD)
	// Run by hand, descriptors 3 and 4 may be the Go runtime's own: touch
	// them only if they are what the daemon hands over.
	var st unix.Stat_t
	if unix.Fstat(controlFD, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		fmt.Fprintf(out, "remocal: %s is started by the remocal daemon (no control connection)\n", Arg)
		return 2
	}
	if unix.Fstat(logFD, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO {
		// Keepers get os.Stderr: they may outlive the host, and must not
		// hold its own standard error, whose end tells the daemon the
		// host's last words are in.
		os.Stderr = os.NewFile(logFD, "keeper-log")
	}
	f := os.NewFile(controlFD, "control")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(out, "remocal: %s is started by the remocal daemon (no control connection: %v)\n", Arg, err)
		return 2
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	h := &host{out: out, specs: make(chan startParams, 1), stop: make(chan struct{}), events: newQueue[Event]()}
	h.conn = jsonrpc2.NewConn(jsonrpc2.NewHeaderStream(nc))
	h.conn.Go(context.Background(), h.handle)
	defer h.conn.Close()

	var p startParams
	timer := time.NewTimer(specTimeout)
	defer timer.Stop()
	select {
	case p = <-h.specs:
	case <-h.conn.Done():
		return 1
	case sig := <-sigs:
		fmt.Fprintf(out, "remocal: session host: %v before the session started\n", sig)
		return 1
	case <-timer.C:
		fmt.Fprintf(out, "remocal: session host: the daemon sent no session to start within %v\n", specTimeout)
		return 1
	}

	// Starting takes a while (an agent to start, the target's environment
	// to read): give up if the daemon goes away or asks to stop meanwhile.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case sig := <-sigs:
			fmt.Fprintf(out, "remocal: session %s: %v, closing the session\n", p.ID, sig)
		case <-h.conn.Done():
		case <-h.stop:
		case <-stopped:
		}
		cancel()
	}()

	ready, herr := h.start(ctx, p)
	if herr != nil {
		fmt.Fprintf(out, "remocal: session %s: %s\n", p.ID, herr.Message)
		h.conn.Notify(context.Background(), methodReady, readyParams{Error: herr})
		return 1
	}
	h.mu.Lock()
	// Warnings so far go with Ready; later ones are events, sent after it.
	ready.Warnings = append([]string{}, h.warnings...)
	h.ready = true
	h.mu.Unlock()
	err = h.conn.Notify(context.Background(), methodReady, readyParams{Ready: &ready})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		h.events.run(func(ev Event) { h.conn.Notify(context.Background(), methodEvent, ev) })
	}()
	code := 0
	if err == nil {
		select {
		case <-ctx.Done():
		case <-h.sess.Aborted():
			// A port is held by another session and onConflict is
			// abort: the session ends, its last words naming the holder.
			fmt.Fprintf(out, "remocal: session %s ended: %v\n", p.ID, h.sess.AbortErr())
			code = 1
		}
	}
	h.sess.Close()
	h.events.close()
	<-sent
	return code
}

// handle serves the daemon's messages. Notifications never return errors:
// that would end the connection.
func (h *host) handle(ctx context.Context, req *jsonrpc2.Request) (any, error) {
	switch req.Method() {
	case methodStart:
		var p startParams
		if err := jsonrpc2.DefaultCodec.Unmarshal(req.Params(), &p); err != nil {
			fmt.Fprintf(h.out, "remocal: session host: bad start message: %v\n", err)
			return nil, nil
		}
		select {
		case h.specs <- p:
		default: // one session per host
		}
	case methodDetail:
		jsonrpc2.Async(ctx) // reading /proc for the processes takes a moment
		return h.detail()
	case methodStop:
		h.once.Do(func() { close(h.stop) })
		return struct{}{}, nil
	default:
		if req.IsCall() {
			return nil, jsonrpc2.ErrMethodNotFound
		}
	}
	return nil, nil
}

// start opens the session and the socket programs join through.
func (h *host) start(ctx context.Context, p startParams) (Ready, *hostError) {
	fail := func(code int, format string, args ...any) (Ready, *hostError) {
		return Ready{}, &hostError{Code: code, Message: fmt.Sprintf(format, args...)}
	}
	if p.Socket == "" {
		return fail(daemon.CodeInternal, "no socket path for programs to join through")
	}
	cfg := &config.Config{}
	if len(p.Config) > 0 && string(p.Config) != "null" {
		if err := json.Unmarshal(p.Config, cfg); err != nil {
			return fail(daemon.CodeInvalidConfig, "invalid configuration: %v", err)
		}
	}
	if p.Incoming != "" && !p.Incoming.Valid() {
		return fail(daemon.CodeInvalidConfig, "invalid configuration: incoming %q is not mirror, steal or off", p.Incoming)
	}
	sess, conn, err := session.Open(ctx, session.OpenOptions{
		Options: session.Options{Config: cfg, ClientName: p.ClientName, Version: p.Version, WorkDir: p.WorkDir,
			TransparentFirst: p.TransparentFirst, Stderr: h.out, OnEvent: h.onEvent},
		Overrides: session.Overrides{Target: p.Target, Incoming: p.Incoming},
		Cluster:   kube.NewConnector,
		// Conflicts and reconnections name the target as it resolves
		// once connected (a Kubernetes session may follow it to a new
		// pod), so the connector is known before the session starts.
		OnConnector: func(c connect.Connector) {
			h.mu.Lock()
			h.id, h.describe = p.ID, c.Describe
			h.mu.Unlock()
		},
	})
	if err != nil {
		code := startErrorCode(err)
		if code == daemon.CodeInvalidConfig {
			return fail(code, "invalid configuration: %v", err)
		}
		r, he := fail(code, "%v", err)
		he.Policy = policyOf(err)
		return r, he
	}
	dir := p.LibraryDir
	if dir == "" {
		dir = bootstrap.DefaultDir()
	}
	lib, err := bootstrap.Install(dir)
	if err != nil {
		sess.Close()
		return fail(daemon.CodeInternal, "%v", err)
	}
	if err := sess.ServeBootstrap(p.Socket); err != nil {
		sess.Close()
		return fail(daemon.CodeInternal, "%v", err)
	}
	h.mu.Lock()
	h.sess = sess
	h.started = conn.Describe()
	// The IDE shows Ready's warnings; a terminal user of exec sees the
	// same line.
	if notice := sess.KeptLocalNotice(); notice != "" {
		h.warnings = append(h.warnings, notice)
	}
	h.mu.Unlock()
	env := sess.RemoteEnv()
	env["LD_PRELOAD"] = lib
	env[session.SocketEnv] = p.Socket
	ready := Ready{Env: env, Incoming: sess.Config().Network.Incoming.Mode, Resolved: conn.Describe(),
		QueueSplits: queueSplits(sess.Config().QueueSplits, sess.QueueSplits())}
	if n, ok := conn.(interface{ Note() string }); ok { // Kubernetes: which pod of several, and why
		ready.Note = n.Note()
	}
	return ready, nil
}

// onEvent turns what the supervisors report into events for the daemon.
func (h *host) onEvent(ev session.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := Event{Kind: ev.Kind, Message: ev.Message}
	switch ev.Kind {
	case daemon.EventSubscribed:
	case daemon.EventSubscribeFailed:
		out.Policy = policyOf(ev.Err)
		if ev.Holder != nil {
			out.Kind = daemon.EventConflict
			out.Conflict = &daemon.Conflict{SessionID: h.id, Target: h.describe(), Port: ev.RemotePort,
				Mode: ev.Mode, Holder: ev.Holder, Message: ev.Message, Taken: ev.Taken}
		}
	case daemon.EventAgentLost, daemon.EventAgentGone:
	case daemon.EventAgentReconnected:
		// The target may have moved to a new pod meanwhile.
		out.Resolved = h.describe()
		h.events.push(out)
		return
	case daemon.EventTargetMoved:
		out.Resolved = h.describe()
		out.Stale = &daemon.StaleTarget{From: h.started, Kept: h.sess.Kept(), Action: daemon.ActionRestart, Message: ev.Message}
		h.events.push(out)
		return
	case daemon.EventWarning:
		if !h.ready {
			h.warnings = append(h.warnings, ev.Message)
			return
		}
	default:
		out.Kind = daemon.EventWarning
	}
	if out.Kind != daemon.EventSubscribed {
		h.errs = append(h.errs, ev.Message)
		if len(h.errs) > maxErrors {
			h.errs = h.errs[len(h.errs)-maxErrors:]
		}
	}
	h.events.push(out)
}

// detail answers sessionhost/detail.
func (h *host) detail() (Detail, error) {
	h.mu.Lock()
	sess := h.sess
	errs := append([]string{}, h.errs...)
	h.mu.Unlock()
	if sess == nil {
		return Detail{}, errors.New("the session is not ready")
	}
	sd := sess.Detail()
	d := Detail{Subscriptions: []daemon.Subscription{}, Processes: []daemon.Process{}, Errors: errs, Supervised: sd.Supervised,
		Counters: map[string]uint64{"notified": sd.Stats.Notified, "continued": sd.Stats.Continued,
			"delivered": sd.Stats.Delivered}}
	for k, v := range sd.Stats.Remote {
		d.Counters[k] = v
	}
	for _, s := range sd.Subscriptions {
		d.Subscriptions = append(d.Subscriptions, daemon.Subscription{Port: s.RemotePort, LocalPort: s.LocalPort,
			Mode: s.Mode, Filter: s.Filter, Deliveries: s.Deliveries})
	}
	for _, p := range sd.Processes {
		d.Processes = append(d.Processes, daemon.Process{PID: p.PID, Exe: p.Exe})
	}
	return d, nil
}
