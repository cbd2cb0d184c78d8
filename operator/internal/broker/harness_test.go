package broker_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remocal/remocal/agent"
	"github.com/remocal/remocal/agent/target"
	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/agenttls"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/operator/internal/broker"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
)

// The tests run real agents (in-process, serving processes in the test
// network namespaces of internal/localenv) behind TLS and their key on
// loopback TCP, a real broker, and real clients (internal/agentclient)
// connected to it over loopback TCP.
func TestMain(m *testing.M) {
	if os.Getenv(brokerProcessEnv) != "" {
		os.Exit(runBrokerProcess())
	}
	envtest.Main(m)
}

const ns = "shop"

// tgt is the target every test uses: the app pods of the environment;
// svc is another name for the same pods (a Service in front of them).
const (
	tgt = "deployment.inventory"
	svc = "service.inventory"
)

var agentKey = []byte("the-operator-made-this-agent-key-0123")

// localAgents implements broker.Agents with one in-process agent per
// localenv pod, each on loopback TCP with TLS and a key, as the operator
// reaches agents in a cluster.
type localAgents struct {
	t testing.TB

	mu       sync.Mutex
	pods     []broker.Pod
	agents   map[string]*localAgent // by pod name
	watchers map[chan []broker.Pod]struct{}
	idle     []string
	watches  int // Pods calls
	wg       sync.WaitGroup
}

type localAgent struct {
	pod   *localenv.Pod
	addr  string
	cert  []byte // PEM, for a broker in another process to pin
	tls   *tls.Config
	stop  func()
	dials int
}

func newLocalAgents(t testing.TB) *localAgents {
	la := &localAgents{t: t, agents: map[string]*localAgent{}, watchers: map[chan []broker.Pod]struct{}{}}
	t.Cleanup(la.wg.Wait)
	return la
}

// add serves pod with an agent and makes it one of the target's pods,
// created at created.
func (la *localAgents) add(pod *localenv.Pod, created time.Time) broker.Pod {
	la.t.Helper()
	la.serve(pod)
	bp := broker.Pod{Namespace: ns, Name: pod.Name, Created: created}
	la.mu.Lock()
	la.pods = append(la.pods, bp)
	la.mu.Unlock()
	la.notify()
	return bp
}

// restart stops pod's agent, which ends every connection to it, and
// starts a new one (a new address and certificate), as a restarted agent
// pod would be.
func (la *localAgents) restart(name string) {
	la.t.Helper()
	la.mu.Lock()
	a := la.agents[name]
	la.mu.Unlock()
	a.stop()
	la.serve(a.pod)
}

// serve starts an in-process agent for pod on loopback TCP with TLS and
// the key.
func (la *localAgents) serve(pod *localenv.Pod) {
	t := la.t
	t.Helper()
	proc, err := target.PID(pod.PID).Locate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{Target: proc, Version: "test", Logger: testLogger(t, "agent-"+pod.Name), Key: agentKey})
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := agenttls.New("agent-" + pod.Name)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := agenttls.PinnedConfig(cert)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.Serve(ctx, tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13}))
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, agent.ErrTargetExited) {
				t.Errorf("agent of %s: %v", pod.Name, err)
			}
			proc.Close()
		})
	}
	t.Cleanup(stop)
	la.mu.Lock()
	dials := 0
	if old := la.agents[pod.Name]; old != nil {
		dials = old.dials
	}
	la.agents[pod.Name] = &localAgent{pod: pod, addr: l.Addr().String(), cert: cert, tls: pinned, stop: stop, dials: dials}
	la.mu.Unlock()
}

// remove takes pod out of the target's ready pods (its agent stays).
func (la *localAgents) remove(name string) {
	la.mu.Lock()
	var keep []broker.Pod
	for _, p := range la.pods {
		if p.Name != name {
			keep = append(keep, p)
		}
	}
	la.pods = keep
	la.mu.Unlock()
	la.notify()
}

func (la *localAgents) notify() {
	la.mu.Lock()
	defer la.mu.Unlock()
	for ch := range la.watchers {
		select {
		case ch <- append([]broker.Pod(nil), la.pods...):
		default:
			// A full channel holds an older set; replace it.
			select {
			case <-ch:
			default:
			}
			ch <- append([]broker.Pod(nil), la.pods...)
		}
	}
}

func (la *localAgents) Pods(ctx context.Context, namespace, target string) (<-chan []broker.Pod, error) {
	if namespace != ns || (target != tgt && target != svc) {
		return nil, fmt.Errorf("target %s/%s: %w", namespace, target, backend.ErrNotFound)
	}
	in := make(chan []broker.Pod, 1)
	out := make(chan []broker.Pod)
	la.mu.Lock()
	in <- append([]broker.Pod(nil), la.pods...)
	la.watchers[in] = struct{}{}
	la.watches++
	la.mu.Unlock()
	la.wg.Add(1)
	go func() {
		defer la.wg.Done()
		defer close(out)
		defer func() {
			la.mu.Lock()
			delete(la.watchers, in)
			la.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case pods := <-in:
				select {
				case out <- pods:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func (la *localAgents) Dial(ctx context.Context, pod broker.Pod) (*agentclient.Client, error) {
	la.mu.Lock()
	a := la.agents[pod.Name]
	if a != nil {
		a.dials++
	}
	la.mu.Unlock()
	if a == nil {
		return nil, fmt.Errorf("no agent for pod %s", pod.Name)
	}
	return agentclient.Dial(ctx, "tcp:"+a.addr, agentclient.Options{
		Name: "remocal-operator", Version: "test", Key: agentKey, TLS: a.tls, Logger: testLogger(la.t, "operator-agentclient"),
	})
}

func (la *localAgents) Idle(pod broker.Pod) {
	la.mu.Lock()
	la.idle = append(la.idle, pod.Name)
	la.mu.Unlock()
}

func (la *localAgents) dials(pod string) int {
	la.mu.Lock()
	defer la.mu.Unlock()
	return la.agents[pod].dials
}

// authorizer grants override to the users in it. The real one asks the
// cluster (SubjectAccessReview); the operator e2e tests cover that.
type authorizer struct {
	mu      sync.Mutex
	allowed map[string]bool
	asked   []string
}

func (a *authorizer) Allowed(_ context.Context, who operator.UserInfo, verb, namespace, resource, _, name string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, fmt.Sprintf("%s %s %s/%s/%s", who.Username, verb, namespace, resource, name))
	return verb == operator.VerbOverride && resource == operator.ResourceTargets && a.allowed[who.Username], nil
}

func (a *authorizer) allow(user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.allowed[user] = true
}

// fixture is a broker over local agents.
type fixture struct {
	t      *testing.T
	env    *localenv.Env
	agents *localAgents
	authz  *authorizer
	b      *broker.Broker
	serves sync.WaitGroup
	// serveCtx is what Serve runs under, as the API server's; stopServing
	// ends it, as a stopping server cuts its upgraded connections.
	serveCtx    context.Context
	stopServing context.CancelFunc
}

type fixtureOptions struct {
	sessionTTL time.Duration
	// policies, if set, are the broker's (a seam: the operator's informer
	// is tested on the cluster by test/e2e/operator).
	policies *staticPolicies
	auditor  *auditLog
}

func newFixture(t *testing.T, opts fixtureOptions) *fixture {
	env := envtest.New(t)
	f := &fixture{t: t, env: env, agents: newLocalAgents(t), authz: &authorizer{allowed: map[string]bool{}}}
	f.agents.add(env.App, time.Now().Add(-time.Hour))
	f.serveCtx, f.stopServing = context.WithCancel(context.Background())
	f.b = f.newBroker("operator-0", opts)
	t.Cleanup(func() {
		f.stopServing()
		f.b.Close()
		f.serves.Wait()
	})
	return f
}

// newBroker is a broker over the fixture's agents: a replica of the
// operator named self.
func (f *fixture) newBroker(self string, opts fixtureOptions) *broker.Broker {
	cfg := broker.Config{
		Agents: f.agents, Authorizer: f.authz, Version: "test", Self: self,
		SessionTTL: opts.sessionTTL, AgentIdleTTL: time.Minute, Logger: testLogger(f.t, "broker-"+self),
	}
	if opts.policies != nil {
		cfg.Policies = opts.policies
	}
	if opts.auditor != nil {
		cfg.Auditor = opts.auditor
	}
	b, err := broker.New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// client is one user's connection through the broker.
type client struct {
	*agentclient.Client
	user   string
	conn   net.Conn // the client's end, to cut it abruptly
	events chan wire.Event
}

type clientOptions struct {
	session   string
	target    string        // default tgt
	heartbeat time.Duration // default 200ms, for tests that watch leases
	// without plays an older client that does not list them.
	without []wire.Capability
}

// connect opens a session for user as the API server would hand the
// upgraded connection to Serve, and speaks to it as remocal's client does.
func (f *fixture) connect(user string, opts clientOptions) (*client, error) {
	t := f.t
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	who := operator.UserInfo{Username: user, Groups: []string{"system:authenticated"}}
	target := opts.target
	if target == "" {
		target = tgt
	}
	f.serves.Add(1)
	b, serveCtx := f.b, f.serveCtx
	go func() {
		defer f.serves.Done()
		b.Serve(serveCtx, server, who, ns, target)
	}()
	c := &client{user: user, conn: conn, events: make(chan wire.Event, 16)}
	heartbeat := opts.heartbeat
	if heartbeat == 0 {
		heartbeat = 200 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ac, err := agentclient.New(ctx, conn, agentclient.Options{
		Name: user + "@laptop", Version: "test", Session: opts.session, Host: "laptop", Tool: "broker test",
		Unauthenticated: true, Heartbeat: heartbeat, Logger: testLogger(t, "client-"+user),
		WithoutCapabilities: opts.without,
		OnEvent: func(ev wire.Event) {
			select {
			case c.events <- ev:
			default:
				t.Errorf("%s: event dropped: %+v", user, ev)
			}
		},
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.Client = ac
	t.Cleanup(func() { ac.Close() })
	return c, nil
}

func (f *fixture) mustConnect(user string, opts clientOptions) *client {
	f.t.Helper()
	c, err := f.connect(user, opts)
	if err != nil {
		f.t.Fatalf("%s connects: %v", user, err)
	}
	return c
}

// nextEvent waits for the client's next event.
func (c *client) nextEvent(t *testing.T) wire.Event {
	t.Helper()
	select {
	case ev := <-c.events:
		return ev
	case <-time.After(20 * time.Second):
		t.Fatalf("%s got no event", c.user)
		return wire.Event{}
	}
}

// localServer stands for a developer's local process.
type localServer struct {
	*httptest.Server
	name string
	mu   sync.Mutex
	got  []string // paths, in order
}

func newLocalServer(t *testing.T, name string) *localServer {
	ls := &localServer{name: name}
	ls.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		ls.mu.Lock()
		ls.got = append(ls.got, r.URL.Path)
		ls.mu.Unlock()
		w.Header().Set("X-Served-By", "local-"+name)
		fmt.Fprintf(w, "local %s %s", name, r.URL.Path)
	}))
	t.Cleanup(ls.Close)
	return ls
}

func (ls *localServer) forwarder() *agentclient.Forwarder {
	return agentclient.ForwardTo(strings.TrimPrefix(ls.URL, "http://"))
}

func (ls *localServer) received(path string) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, p := range ls.got {
		if p == path {
			return true
		}
	}
	return false
}

// get sends a request from the peer pod to the pod at ip and returns who
// served it.
func (f *fixture) get(ip netip.Addr, path string, header http.Header) (status int, body, by string) {
	t := f.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+ip.String()+":8080"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := f.env.HTTP(f.env.Peer).Do(req)
	if err != nil {
		t.Fatalf("GET %s%s from the peer pod: %v", ip, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header.Get("X-Served-By")
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// servedBy says who answered: the app's hostname (it says so on its 404s
// too) or "local-NAME".
func (f *fixture) servedBy(ip netip.Addr, path string, header http.Header) string {
	f.t.Helper()
	status, body, by := f.get(ip, path, header)
	if by == "" {
		f.t.Fatalf("GET %s%s: status %d from nobody known: %s", ip, path, status, body)
	}
	return by
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t testing.TB, who string) *slog.Logger {
	level := slog.LevelDebug
	if _, ok := t.(*testing.B); ok {
		level = slog.LevelWarn // a log line per request would be what a benchmark measures
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level})).With("who", who)
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	defer func() { recover() }() // a log from a goroutine outliving its test must not panic the binary
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
