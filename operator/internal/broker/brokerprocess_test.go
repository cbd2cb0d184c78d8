package broker_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/agenttls"
	"github.com/remocal/remocal/operator/internal/broker"
	"github.com/remocal/remocal/protocol/operator"
)

// brokerProcessEnv makes the test binary the broker process of
// BenchmarkSessionCapacity instead of running tests (see TestMain).
const brokerProcessEnv = "REMOCAL_TEST_BROKER_PROCESS"

// runBrokerProcess serves sessions, as remocal-operator's broker does,
// over TLS on loopback: every connection is a session of a user of its
// own on tgt, whose one pod's agent is at $AGENT_ADDR (certificate
// $AGENT_CERT). It prints "listening ADDR CERT" and then answers each
// "stats" line on stdin with its goroutines and heap, until stdin ends.
func runBrokerProcess() int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "broker process: %v\n", err)
		return 1
	}
	pinned, err := agenttls.PinnedConfig([]byte(os.Getenv("AGENT_CERT")))
	if err != nil {
		return fail(err)
	}
	agents := &remoteAgent{addr: os.Getenv("AGENT_ADDR"), tls: pinned,
		pod: broker.Pod{Namespace: ns, Name: os.Getenv("AGENT_POD"), Created: time.Now().Add(-time.Hour)}}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := broker.New(broker.Config{Agents: agents, Authorizer: &authorizer{}, Version: "bench", Self: "operator-0", Logger: log})
	if err != nil {
		return fail(err)
	}
	certPEM, keyPEM, err := agenttls.New("operator")
	if err != nil {
		return fail(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fail(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	fmt.Printf("listening %s %q\n", l.Addr(), certPEM)
	tl := tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			conn, err := tl.Accept()
			if err != nil {
				return
			}
			who := operator.UserInfo{Username: fmt.Sprintf("user%d", i), Groups: []string{"system:authenticated"}}
			wg.Go(func() { b.Serve(context.Background(), conn, who, ns, tgt) })
		}
	})
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "stats":
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("goroutines %d heap %d stack %d\n", runtime.NumGoroutine(), ms.HeapInuse, ms.StackInuse)
		case "profile": // CPU profile to the file arg, until "heap"
			if f, err := os.Create(arg); err == nil {
				pprof.StartCPUProfile(f)
				defer f.Close()
			}
		case "heap": // end the CPU profile; heap profile to arg
			pprof.StopCPUProfile()
			if f, err := os.Create(arg); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
			if f, err := os.Create(arg + ".goroutines"); err == nil {
				pprof.Lookup("goroutine").WriteTo(f, 1)
				f.Close()
			}
		}
	}
	l.Close()
	b.Close() // ends every session, so the Serve calls return
	wg.Wait()
	return 0
}

// remoteAgent is broker.Agents for one pod whose agent another process
// serves.
type remoteAgent struct {
	addr string
	tls  *tls.Config
	pod  broker.Pod
}

func (r *remoteAgent) Pods(ctx context.Context, namespace, target string) (<-chan []broker.Pod, error) {
	ch := make(chan []broker.Pod, 1)
	ch <- []broker.Pod{r.pod}
	// The set never changes; the channel closes when ctx ends, as the
	// interface says.
	go func() {
		<-ctx.Done()
		close(ch)
	}()
	return ch, nil
}

func (r *remoteAgent) Dial(ctx context.Context, pod broker.Pod) (*agentclient.Client, error) {
	return agentclient.Dial(ctx, "tcp:"+r.addr, agentclient.Options{Name: "remocal-operator", Version: "bench", Key: agentKey, TLS: r.tls})
}

func (r *remoteAgent) Idle(broker.Pod) {}
