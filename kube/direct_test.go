package kube

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/agenttls"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/wire"
)

// A client's agent keeps its loopback listener for the port-forward and
// serves TLS on its pod's address for the direct transport, with the
// certificate and key mounted beside its key; it is not an operator's.
func TestClientAgentJobServesDirect(t *testing.T) {
	job := clientAgentJob(keyTarget, "shop", keyTarget.ContainerID, AgentOptions{Image: "a", IdleTTL: time.Minute}, "remocal-agent-key-0a1b2c3d4e")
	spec := job.Spec.Template.Spec
	c := spec.Containers[0]
	wantArgs := []string{"--listen", "tcp:127.0.0.1:47113", "--idle-ttl", "1m0s", "--container-id", "containerd://abc", "--target-name", "deployment/api",
		"--node-ip=$(REMOCAL_NODE_IP)", "--secret-file", "/var/run/remocal/agent/key", "--tls-listen", "tcp::47114",
		"--tls-cert-file", "/var/run/remocal/agent/tls.crt", "--tls-key-file", "/var/run/remocal/agent/tls.key"}
	if diff := cmp.Diff(wantArgs, c.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != AgentTLSPort {
		t.Errorf("ports %+v", c.Ports)
	}
	items := spec.Volumes[0].Secret.Items
	if len(items) != 3 || items[1].Key != tlsCertItem || items[2].Key != tlsKeyItem || *spec.Volumes[0].Secret.DefaultMode != 0o400 {
		t.Errorf("secret items %+v", spec.Volumes[0].Secret)
	}
	if !isAgentJob(job) || !servesDirect(job) || isOperatorAgentJob(job) {
		t.Errorf("agent job %v, serves direct %v, operator's %v", isAgentJob(job), servesDirect(job), isOperatorAgentJob(job))
	}
	if servesDirect(agentJob(keyTarget, "shop", keyTarget.ContainerID, AgentOptions{Image: "a"}, "s")) {
		t.Error("a Job without --tls-listen (an older remocal's) passes for one serving direct")
	}
}

// Whether an agent can be reached directly: only with its pod's address,
// a direct port and the certificate to pin.
func TestDirectAddress(t *testing.T) {
	a := &Agent{Container: "agent", PodIP: "10.244.0.9", DirectPort: AgentTLSPort, TLSCert: []byte("pem")}
	if got := a.DirectAddress(); got != "10.244.0.9:47114" {
		t.Errorf("address %q", got)
	}
	for _, c := range []struct {
		a   Agent
		why string
	}{
		{Agent{Container: "remocal-agent-1", PodIP: "10.244.0.9"}, "ephemeral"},
		{Agent{Container: "agent", PodIP: "10.244.0.9"}, "older remocal"},
		{Agent{Container: "agent", DirectPort: AgentTLSPort, TLSCert: []byte("pem")}, "no IP address"},
	} {
		if c.a.DirectAddress() != "" || !strings.Contains(noDirect(&c.a), c.why) {
			t.Errorf("%+v: address %q, why %q", c.a, c.a.DirectAddress(), noDirect(&c.a))
		}
	}
}

// The attack: something else answers at the agent pod's address (the IP
// reused by another pod, a network in between) with a certificate of its
// own. The client refuses it during the TLS handshake, so the impostor
// gets a TLS client hello and nothing else: no agent hello, no key proof,
// no request. With transport direct the session stops saying so.
func TestDirectRefusesAnImpostor(t *testing.T) {
	agentCert, _, err := agenttls.New("the-agent")
	if err != nil {
		t.Fatal(err)
	}
	impCert, impKey, err := agenttls.New("an-impostor")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(impCert, impKey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type seen struct {
		handshake error
		n         int
	}
	got := make(chan seen, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			got <- seen{handshake: err}
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13})
		s := seen{handshake: tc.Handshake()}
		buf := make([]byte, 4096)
		for {
			n, err := tc.Read(buf)
			s.n += n
			if err != nil {
				break
			}
		}
		got <- s
	}()
	port := l.Addr().(*net.TCPAddr).Port
	a := &Agent{Namespace: "shop", Pod: "remocal-agent-x", Container: "agent", Port: AgentPort,
		PodIP: "127.0.0.1", DirectPort: port, TLSCert: agentCert, Key: wire.NewKey()}
	env := &Env{Client: fake.NewClientset()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, via, err := dialAgent(ctx, env, a, agentclient.Options{Name: "alice@laptop"}, 5*time.Second, config.TransportDirect)
	if err == nil {
		c.Close()
		t.Fatalf("connected to the impostor %s", via)
	}
	if !errors.Is(err, ErrNotOurAgent) || !errors.Is(err, agenttls.ErrNotPinned) || !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(port)) {
		t.Errorf("error %v: want ErrNotOurAgent naming the address, from the pin", err)
	}
	s := <-got
	if s.handshake == nil || s.n != 0 {
		t.Errorf("the impostor completed its handshake (%v) or read %d bytes of application data", s.handshake, s.n)
	}
}

// Why a direct dial failed decides what happens next: a refusal may be an
// agent not listening yet (retry), anything else on the way means the pod
// network is out of reach (fall back), an answer that proves nothing is
// an impostor.
func TestClassifyDirect(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: a real refusal
	_, refused := net.DialTimeout("tcp", addr, time.Second)
	for _, c := range []struct {
		err  error
		want directFailure
	}{
		{refused, directRefused},
		{&net.OpError{Op: "dial", Err: syscall.ENETUNREACH}, directUnreachable},
		{context.DeadlineExceeded, directUnreachable},
		{agenttls.ErrNotPinned, directImpostor},
		{&agentclient.UnprovenAgentError{Why: "no proof"}, directImpostor},
	} {
		if got := classifyDirect(c.err); got != c.want {
			t.Errorf("%v: %v, want %v", c.err, got, c.want)
		}
	}
}
