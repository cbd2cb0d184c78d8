package incoming

import (
	"bufio"
	"bytes"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/remocal/remocal/internal/http1"
)

// The kubelet's HTTP probes must keep reaching the pod while its port is
// stolen: a liveness probe answered by a laptop that sits at a breakpoint
// (or by nothing, once the local program stops) fails, and the kubelet
// restarts the container, ending every session on it. So an HTTP request
// from the node that says it is a kubelet probe goes to the application,
// steal or not; mirrors still get their copy.
//
// Two signs together mark a probe: the source is one of the node's own
// addresses as the pod sees them (the kubelet dials from the host network
// namespace, so the source is the node's IP or the host end of the pod's
// route, its default gateway), and the request's User-Agent is the
// kubelet's. Traffic from other pods never carries the first sign, so
// only connections from the node pay for looking at the request.
//
// Kubelet gRPC probes are HTTP/2 connections from the node: those are
// routed stream by stream even under an unfiltered steal (conn.go,
// h2.go), and a stream with the kubelet's User-Agent, or a call of the
// gRPC health service, goes to the application (isProbeStream).

// probeUserAgent starts the User-Agent of every kubelet HTTP probe
// ("kube-probe/1.34").
const probeUserAgent = "kube-probe/"

// probeWait bounds the wait for a node's connection to show its request.
// The kubelet writes its probe right after connecting; what stays silent
// longer is a client waiting for the server to speak first (a MySQL
// client behind a NodePort, say), which is stolen after this delay.
const probeWait = 250 * time.Millisecond

// probeHeadLimit bounds how much of a node's connection is buffered to find
// the end of the request head; kubelet probes send a few hundred bytes.
const probeHeadLimit = 8 << 10

// unmappedAddrs is addrs as connection sources compare with them (IPv4
// unmapped, as serveConn records sources), without invalid ones or repeats.
func unmappedAddrs(addrs []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if a.IsValid() && !slices.Contains(out, a.Unmap()) {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// fromNode reports whether a connection's (unmapped) source is the node.
// nodeAddrs never change after New: no lock on this per-connection path.
func (m *Manager) fromNode(a netip.Addr) bool {
	return slices.Contains(m.nodeAddrs, a)
}

// isProbeRequest reports whether a parsed request is a kubelet probe.
func isProbeRequest(req *http.Request) bool {
	return strings.HasPrefix(req.UserAgent(), probeUserAgent)
}

// startsWithProbe looks at the first request of c without consuming it:
// whether it is an HTTP/1 request whose head carries the kubelet's
// User-Agent. Anything else (another protocol, a client that waits for
// the server to speak first, a head longer than probeHeadLimit) is not a
// probe; the whole look is bounded by probeWait.
func startsWithProbe(c *http1.Conn) bool {
	deadline := time.Now().Add(probeWait)
	if sniff(c, c.R, probeWait) != protoHTTP1 {
		return false
	}
	c.SetReadDeadline(deadline)
	defer c.SetReadDeadline(time.Time{})
	for {
		// Only what has arrived: waiting for a fixed size would stall a
		// short request until the deadline.
		head, _ := c.R.Peek(c.R.Buffered())
		if end := bytes.Index(head, []byte("\r\n\r\n")); end >= 0 {
			return headIsProbe(head[:end+4])
		}
		if len(head) >= probeHeadLimit {
			return false
		}
		if _, err := c.R.Peek(len(head) + 1); err != nil {
			return false
		}
	}
}

// headIsProbe parses a complete request head (ending in an empty line)
// as the HTTP router would, and asks isProbeRequest.
func headIsProbe(head []byte) bool {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	return err == nil && isProbeRequest(req)
}
