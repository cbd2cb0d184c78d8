package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/procwatch"
	"github.com/remocal/remocal/test/queueapp/queuerecord"
)

// The tests run in a network namespace of their own (envtest.Main): the
// servers listen on loopback ports there.
func TestMain(m *testing.M) { envtest.Main(m, gobuild.Cleanup) }

const pkg = "github.com/remocal/remocal/test/queueapp"

// env is one test's servers: the broker and the results Redis.
type testEnv struct {
	t       *testing.T
	broker  string
	addr    string
	results *redis.Client
	resAddr string
	bin     string
}

func newEnv(t *testing.T, broker string) *testEnv {
	t.Helper()
	envtest.RequireRoot(t)
	e := &testEnv{t: t, broker: broker, bin: gobuild.Program(t, pkg, gobuild.Options{Static: true})}
	e.resAddr = startRedis(t)
	e.results = redis.NewClient(&redis.Options{Addr: e.resAddr})
	t.Cleanup(func() { _ = e.results.Close() })
	if broker == "redis" {
		e.addr = e.resAddr // one server is both, as a test may have it
		return e
	}
	port := freePort(t)
	startServer(t, "nats-server", "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-sd", t.TempDir())
	e.addr = fmt.Sprintf("127.0.0.1:%d", port)
	if err := poll.Until(t.Context(), 10*time.Second, func() error {
		c, err := net.Dial("tcp", e.addr)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

func startRedis(t *testing.T) string {
	port := freePort(t)
	startServer(t, "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	if err := poll.Until(t.Context(), 10*time.Second, func() error { return c.Ping(t.Context()).Err() }); err != nil {
		t.Fatal(err)
	}
	return addr
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startServer(t *testing.T, name string, args ...string) {
	t.Helper()
	path := ""
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"} {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			path = filepath.Join(d, name)
			break
		}
	}
	if path == "" {
		t.Fatalf("%s is needed (apt-get install %s, or make deps)", name, name)
	}
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// queue is what the env vars name.
type queue struct{ stream, group, subject string }

func (e *testEnv) cmd(mode string, q queue, extra []string, args ...string) *exec.Cmd {
	cmd := exec.Command(e.bin, append([]string{mode}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "BROKER=" + e.broker, "BROKER_ADDR=" + e.addr, "RESULTS_ADDR=" + e.resAddr,
		"ORDERS_STREAM=" + q.stream, "ORDERS_GROUP=" + q.group, "ORDERS_SUBJECT=" + q.subject}, extra...)
	return cmd
}

// produce runs the producer to its end.
func (e *testEnv) produce(q queue, first, count int, rate string) {
	e.t.Helper()
	r := procwatch.Run(e.t, e.cmd("produce", q, nil, "-create", "-start", strconv.Itoa(first), "-count", strconv.Itoa(count), "-rate", rate))
	if r.Code != 0 {
		e.t.Fatalf("produce: exit %d:\n%s", r.Code, r.Stderr)
	}
}

// consumer starts a consumer recording as who.
func (e *testEnv) consumer(q queue, who string) *procwatch.Proc {
	return procwatch.Start(e.t, e.cmd("consume", q, []string{"WHO=" + who}, "-consumer", who, "-claim-idle", "0"))
}

// waitRecords waits until the results list holds n records.
func (e *testEnv) waitRecords(n int) queuerecord.Tally {
	e.t.Helper()
	var recs []queuerecord.Record
	if err := poll.Until(e.t.Context(), 60*time.Second, func() error {
		var err error
		recs, err = queuerecord.Read(e.t.Context(), e.results)
		if err == nil && len(recs) < n {
			err = fmt.Errorf("%d records of %d", len(recs), n)
		}
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return queuerecord.Count(recs)
}

// stop sends SIGTERM and expects a clean exit.
func stop(t *testing.T, p *procwatch.Proc) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(); code != 0 {
		t.Fatalf("the consumer exited %d after SIGTERM", code)
	}
}

func queues(broker string) (queue, queue) {
	if broker == "redis" {
		return queue{stream: "orders", group: "workers"}, queue{stream: "orders.other", group: "workers"}
	}
	return queue{stream: "ORDERS", group: "workers", subject: "orders.new"}, queue{stream: "OTHER", group: "others", subject: "other.new"}
}

// The consumer reads the queue its environment names and records each
// message once; started again with other values in the same variables it
// reads the other queue, unchanged — what the operator does to the
// deployed consumer and gives a session.
func TestConsumeThenRepoint(t *testing.T) {
	for _, broker := range []string{"redis", "nats"} {
		t.Run(broker, func(t *testing.T) {
			e := newEnv(t, broker)
			first, second := queues(broker)
			e.produce(first, 1, 300, "0")
			p := e.consumer(first, "deployed")
			tally := e.waitRecords(300)
			stop(t, p)
			if err := tally.ExactlyOnce(1, 300, func(int) string { return "deployed" }); err != nil {
				t.Fatal(err)
			}
			e.produce(second, 301, 100, "0")
			p = e.consumer(second, "alice")
			tally = e.waitRecords(400)
			stop(t, p)
			if err := tally.ExactlyOnce(1, 400, func(n int) string {
				if n <= 300 {
					return "deployed"
				}
				return "alice"
			}); err != nil {
				t.Fatal(err)
			}
			e.checkTenants()
		})
	}
}

// checkTenants checks that message n has tenant a, b, c in turn.
func (e *testEnv) checkTenants() {
	e.t.Helper()
	recs, err := queuerecord.Read(e.t.Context(), e.results)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range recs {
		if want := string(rune('a' + (r.N-1)%3)); r.Tenant != want {
			e.t.Errorf("message %d has tenant %q, want %q", r.N, r.Tenant, want)
		}
	}
}

// SIGTERM while messages arrive: the consumer finishes and acknowledges
// what it holds and exits 0; the next consumer (another name, as a new pod
// of a rollout) gets the rest, and every message is recorded once.
func TestSIGTERMLosesNothing(t *testing.T) {
	for _, broker := range []string{"redis", "nats"} {
		t.Run(broker, func(t *testing.T) {
			e := newEnv(t, broker)
			q, _ := queues(broker)
			e.produce(q, 1, 1, "0") // creates the queue
			prod := procwatch.Start(t, e.cmd("produce", q, nil, "-start", "2", "-count", "599", "-rate", "400"))
			old := e.consumer(q, "old")
			e.waitRecords(100)
			stop(t, old)
			e.consumer(q, "new")
			if code := prod.Wait(); code != 0 {
				t.Fatalf("the producer exited %d", code)
			}
			tally := e.waitRecords(600)
			if err := tally.ExactlyOnce(1, 600, nil); err != nil {
				t.Fatal(err)
			}
			olds := 0
			for _, whos := range tally {
				if whos[0] == "old" {
					olds++
				}
			}
			if olds == 0 || olds == 600 {
				t.Errorf("the old consumer handled %d of 600: the test did not stop it mid-stream", olds)
			}
		})
	}
}

// Missing configuration is refused naming the variable to set.
func TestConsumeNeedsItsVariables(t *testing.T) {
	bin := gobuild.Program(t, pkg, gobuild.Options{Static: true})
	cmd := exec.Command(bin, "consume", "-stream-env", "INVOICE_STREAM", "-addr", "127.0.0.1:1", "-results-addr", "127.0.0.1:1")
	cmd.Env = []string{"ORDERS_STREAM=orders"}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("consume without its variables succeeded:\n%s", out)
	}
	for _, want := range []string{"INVOICE_STREAM", "ORDERS_GROUP"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the refusal does not name %s:\n%s", want, out)
		}
	}
}

// The records' format and the exactly-once check find each kind of fault.
func TestExactlyOnceReportsEachFault(t *testing.T) {
	recs := []queuerecord.Record{{Who: "deployed", N: 1, Tenant: "a"}, {Who: "alice", N: 2, Tenant: "b"}, {Who: "alice", N: 2, Tenant: "b"}, {Who: "deployed", N: 4, Tenant: "a"}, {Who: "deployed", N: 9, Tenant: "c"}}
	for _, r := range recs {
		back, err := queuerecord.Parse(r.String())
		if err != nil || back != r {
			t.Fatalf("Parse(%q) = %+v, %v", r.String(), back, err)
		}
	}
	err := queuerecord.Count(recs).ExactlyOnce(1, 4, func(int) string { return "deployed" })
	if err == nil {
		t.Fatal("no fault found")
	}
	for _, want := range []string{"1 missing (3)", "1 consumed more than once (2:alice,alice)", "1 not produced (9:deployed)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
	if err := queuerecord.Count(recs[:2]).ExactlyOnce(1, 2, nil); err != nil {
		t.Error(err)
	}
	if _, err := queuerecord.Parse("deployed x a"); err == nil {
		t.Error("a record without a number parsed")
	}
}
