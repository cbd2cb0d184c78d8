package kube

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"syscall"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/agenttls"
	"github.com/remocal/remocal/protocol/wire"
)

// The direct transport (issue 15). A port-forward carries every byte
// through the apiserver and the kubelet; a client that can reach the pod
// network (a devcontainer in the cluster, a VPN, the operator) can reach
// the agent's pod itself. So a client's agent also listens on its pod's
// address with TLS, as an operator's agent does (internal/agenttls): the
// client makes the certificate with the Job, keeps it in the Job's Secret
// beside the key, and pins exactly that certificate when it dials, so
// whatever answers at the pod's address must hold the certificate's
// private key before the client sends a byte after its TLS hello; the key
// proof of the agent protocol then runs inside, both ways. The loopback
// listener stays for the port-forward, the fallback.

// AgentTLSPort is where agents serve TLS on their pod's address: a
// client's agent for the direct transport, an operator's agent for the
// operator.
const AgentTLSPort = 47114

// directConnectTimeout bounds the TCP connect of a direct dial: a pod
// network that is not routed from here fails at once (ENETUNREACH); one
// whose packets are dropped costs this much before the port-forward.
// directHandshakeTimeout bounds TLS and the agent's handshake after it.
const (
	directConnectTimeout   = time.Second
	directHandshakeTimeout = 5 * time.Second
)

// withTLS mounts the TLS certificate and key of the agent's Secret beside
// its key, serves TLS with them and names the TLS port.
func withTLS(spec *corev1.PodSpec) {
	c := &spec.Containers[0]
	c.Args = append(c.Args, "--tls-cert-file", keyDir+"/"+tlsCertItem, "--tls-key-file", keyDir+"/"+tlsKeyItem)
	c.Ports = []corev1.ContainerPort{{Name: "agent", ContainerPort: AgentTLSPort, Protocol: corev1.ProtocolTCP}}
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == keyVolume && spec.Volumes[i].Secret != nil {
			spec.Volumes[i].Secret.Items = append(spec.Volumes[i].Secret.Items,
				corev1.KeyToPath{Key: tlsCertItem, Path: tlsCertItem}, corev1.KeyToPath{Key: tlsKeyItem, Path: tlsKeyItem})
		}
	}
}

// clientAgentJob is the Job of an agent a client starts: agentJob, with
// TLS on the pod's address (--tls-listen) beside the loopback listener.
func clientAgentJob(r *Resolved, ns, key string, o AgentOptions, secretName string) *batchv1.Job {
	job := agentJob(r, ns, key, o, secretName)
	spec := &job.Spec.Template.Spec
	spec.Containers[0].Args = append(spec.Containers[0].Args, "--tls-listen", fmt.Sprintf("tcp::%d", AgentTLSPort))
	withTLS(spec)
	return job
}

// servesDirect reports whether a Job's agent listens on its pod's address
// (a Job of an older remocal does not).
func servesDirect(j *batchv1.Job) bool {
	return slices.Contains(j.Spec.Template.Spec.Containers[0].Args, "--tls-listen")
}

// jobCreds returns the credentials of a client agent Job that another
// session created: its key, and its certificate if it serves TLS.
func jobCreds(ctx context.Context, env *Env, j *batchv1.Job) (agentCreds, error) {
	if !isAgentJob(j) {
		return agentCreds{}, mismatch(fmt.Sprintf("the Job %s/%s is not an agent Job remocal made (no key, or other containers or commands)", j.Namespace, j.Name))
	}
	name := jobSecret(j)
	data, err := readAgentSecret(ctx, env, j.Namespace, name, j.UID, 10*time.Second)
	if err != nil {
		return agentCreds{}, err
	}
	key, err := wire.ParseKey(data[keyItem])
	if err != nil {
		return agentCreds{}, fmt.Errorf("the Secret %s/%s: %w", j.Namespace, name, err)
	}
	creds := agentCreds{key: key}
	if servesDirect(j) {
		creds.cert = data[tlsCertItem]
	}
	return creds, nil
}

// DirectAddress is host:port of a client's agent on its pod's address, or
// "" when it has none (an ephemeral agent, a Job of an older remocal).
func (a *Agent) DirectAddress() string {
	if a.DirectPort == 0 || a.PodIP == "" || a.TLSCert == nil {
		return ""
	}
	return net.JoinHostPort(a.PodIP, strconv.Itoa(a.DirectPort))
}

// noDirect says why an agent cannot be reached directly.
func noDirect(a *Agent) string {
	switch {
	case a.Container != "agent":
		return "an ephemeral agent listens only on its pod's loopback"
	case a.TLSCert == nil:
		return "the agent was started by an older remocal, without a listener on its pod's address"
	default:
		return "its pod has no IP address"
	}
}

// directFailure classifies why a direct dial failed.
type directFailure int

const (
	// directRefused: the pod answered with a reset. The agent may not
	// listen yet, or the network refuses the port.
	directRefused directFailure = iota
	// directUnreachable: the pod network cannot be reached from here.
	directUnreachable
	// directImpostor: something answered at the address but could not
	// prove to be the agent; nothing was sent to it.
	directImpostor
)

func classifyDirect(err error) directFailure {
	switch {
	case errors.Is(err, agenttls.ErrNotPinned), errors.Is(err, agentclient.ErrUnprovenAgent):
		return directImpostor
	case errors.Is(err, syscall.ECONNREFUSED):
		return directRefused
	}
	return directUnreachable
}

// dialDirect connects to the agent at its pod's address, pinning its
// certificate, and shakes hands (the key proof inside TLS).
func dialDirect(ctx context.Context, a *Agent, opts agentclient.Options) (*agentclient.Client, error) {
	addr := a.DirectAddress()
	pinned, err := agenttls.PinnedConfig(a.TLSCert)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: directConnectTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, directHandshakeTimeout)
	defer cancel()
	tc := tls.Client(conn, pinned)
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	opts.Key = a.Key
	c, err := agentclient.New(hctx, tc, opts)
	if err != nil {
		tc.Close()
		return nil, err
	}
	return c, nil
}

// notOurAgentAt is the error of a direct dial that met something else at
// the agent's pod address.
func notOurAgentAt(a *Agent, err error) error {
	return fmt.Errorf("%w: %s, the address of the agent pod %s/%s, did not prove to be the agent (nothing was sent to it): %w; use --transport port-forward, and ask an administrator who else answers there",
		ErrNotOurAgent, a.DirectAddress(), a.Namespace, a.Pod, err)
}
