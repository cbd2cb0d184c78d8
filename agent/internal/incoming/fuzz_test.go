package incoming

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/http1"
	"github.com/remocal/remocal/protocol/wire"
)

// Seeds shared by the fuzz targets: what a stolen port really sees first.
var connSeeds = []string{
	"GET / HTTP/1.1\r\nHost: app\r\nAccept: */*\r\n\r\n",
	"GET /healthz HTTP/1.1\r\nHost: 10.0.0.5:8080\r\nUser-Agent: kube-probe/1.34\r\nAccept: */*\r\nConnection: close\r\n\r\n",
	"GET /healthz HTTP/1.1\r\nuser-agent:kube-probe/1.29\r\n\r\n",
	"GET /healthz HTTP/1.1\r\nUser-Agent: curl/8.0\r\nX-Note: kube-probe/1.34\r\n\r\n",
	"GET /healthz HTTP/1.1\r\nUser-Agent: kube-probe/1.34\r\nUser-Agent: curl/8.0\r\n\r\n",
	"POST /api/items HTTP/1.1\r\nHost: app\r\nX-User: alice\r\nContent-Length: 5\r\n\r\nhello",
	"PUT /api/x HTTP/1.1\r\nX-User: bob\r\nX-User: alice\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\n\r\n",
	"GET /a HTTP/1.0\n\n",
	"GET /api/%0A HTTP/1.1\r\nX-User:  alice \r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"PRI",
	"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
	"*1\r\n$4\r\nPING\r\n",
	"get / HTTP/1.1\r\n\r\n",
	" GET / HTTP/1.1\r\n\r\n",
	"GET",
	"\x00",
	"GET / HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 9000) + "\r\n\r\n",
	"GET / HTTP/1.1\r\n Folded: x\r\n\r\n",
}

// FuzzSniff: the protocol guess is a function of the first
// len(http2Preface) bytes alone (more bytes, or the same bytes again, give
// the same answer), reading through a connection gives what the bytes
// alone give and consumes nothing, and each answer has its reason: HTTP/2
// only for a beginning of the preface, HTTP/1 only for a method token of
// upper-case letters (possibly cut short) followed by a space.
func FuzzSniff(f *testing.F) {
	for _, s := range connSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		head := data[:min(len(data), len(http2Preface))]
		got := sniffHead(head)
		if again := sniffHead(bytes.Clone(head)); again != got {
			t.Fatalf("sniffHead(%q) = %v then %v", head, got, again)
		}
		switch got {
		case protoHTTP2:
			if len(head) < 3 || !bytes.HasPrefix(http2Preface, head) {
				t.Fatalf("%q sniffed as HTTP/2", head)
			}
		case protoHTTP1:
			method, _, _ := bytes.Cut(head, []byte(" "))
			if len(method) == 0 || bytes.ContainsFunc(method, func(r rune) bool { return r < 'A' || r > 'Z' }) {
				t.Fatalf("%q sniffed as HTTP/1 with method %q", head, method)
			}
		case protoOther:
		default:
			t.Fatalf("sniffHead(%q) = %v", head, got)
		}

		// Through a connection that delivers the bytes in one write.
		client, server := net.Pipe()
		defer server.Close()
		go func() {
			client.Write(data)
			client.Close()
		}()
		br := bufio.NewReader(server)
		if viaConn := sniff(server, br, sniffTimeout); viaConn != got {
			t.Fatalf("sniff over a connection of %q = %v, sniffHead = %v", data, viaConn, got)
		}
		buffered, _ := br.Peek(br.Buffered())
		if len(buffered) == 0 || !bytes.HasPrefix(data, buffered) {
			t.Fatalf("sniff consumed input: buffered %q of %q", buffered, data)
		}
	})
}

// FuzzStartsWithProbe: a connection is taken for a kubelet probe only if
// its bytes are an HTTP/1 request whose head fits probeHeadLimit and whose
// User-Agent starts with the kubelet's, and then the router, reading the
// same connection, parses the same request and agrees it is a probe. The
// look consumes nothing.
func FuzzStartsWithProbe(f *testing.F) {
	for _, s := range connSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		defer server.Close()
		go func() {
			client.Write(data)
			client.Close()
		}()
		c := http1.NewConn(halfClosedPipe{server})
		probe := startsWithProbe(c)
		buffered, _ := c.R.Peek(c.R.Buffered())
		if !bytes.HasPrefix(data, buffered) {
			t.Fatalf("the probe look consumed input: buffered %q of %q", buffered, data)
		}
		if !probe {
			return
		}
		if sniffHead(data[:min(len(data), len(http2Preface))]) != protoHTTP1 {
			t.Fatalf("%q: a probe that does not sniff as HTTP/1", data)
		}
		end := bytes.Index(data, []byte("\r\n\r\n"))
		if end < 0 || end+4 > probeHeadLimit {
			t.Fatalf("%q: a probe without a complete head within %d bytes", data, probeHeadLimit)
		}
		req, err := c.ReadRequest()
		if err != nil {
			t.Fatalf("%q: a probe the router cannot read: %v", data, err)
		}
		if !isProbeRequest(req) || !strings.HasPrefix(req.Header.Get("User-Agent"), probeUserAgent) {
			t.Fatalf("%q: a probe whose request has User-Agent %q", data, req.UserAgent())
		}
	})
}

// FuzzRequestRoute: whatever request arrives, the route honours the
// filters as plain code reads them: a header filter steals only a request
// that really carries the header value, and wins over a path-only filter;
// the path-only filter steals only paths under /api/ when no header
// filter matched; the POST mirror gets exactly the POST requests; and the
// same request routes the same way twice.
func FuzzRequestRoute(f *testing.F) {
	for _, s := range connSeeds {
		f.Add([]byte(s))
	}
	m := New(nil, nil, nil)
	mk := func(mode wire.Mode, spec wire.HTTPFilter) *subscription {
		c, err := spec.Compile()
		if err != nil {
			f.Fatal(err)
		}
		return &subscription{mode: mode, spec: spec, filter: c}
	}
	pathOnly := mk(wire.ModeSteal, wire.HTTPFilter{Path: "/api/.*"})
	alice := mk(wire.ModeSteal, wire.HTTPFilter{Headers: map[string]string{"x-user": "alice"}})
	mirror := mk(wire.ModeMirror, wire.HTTPFilter{Methods: []string{"POST"}})
	// The path-only filter registered first: precedence must still go to
	// the header filter.
	m.byPort[8080] = []*subscription{pathOnly, alice, mirror}

	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		r := m.requestRoute(8080, req)
		if again := m.requestRoute(8080, req); again.steal != r.steal || !slices.Equal(again.mirrors, r.mirrors) {
			t.Fatalf("%q routed differently twice", data)
		}
		if m.requestRoute(8081, req).steal != nil {
			t.Fatalf("%q stolen on a port with no subscription", data)
		}
		isAlice := slices.Contains(req.Header.Values("X-User"), "alice")
		rest, underAPI := strings.CutPrefix(req.URL.Path, "/api/")
		underAPI = underAPI && !strings.Contains(rest, "\n") // "." does not match a newline
		var want *subscription
		switch {
		case isAlice:
			want = alice
		case underAPI:
			want = pathOnly
		}
		if r.steal != want {
			t.Fatalf("%q (X-User %q, path %q): stolen by %p, want %p (alice %p, path %p)",
				data, req.Header.Values("X-User"), req.URL.Path, r.steal, want, alice, pathOnly)
		}
		if wantMirror := req.Method == "POST"; wantMirror != (len(r.mirrors) == 1 && r.mirrors[0] == mirror) || len(r.mirrors) > 1 {
			t.Fatalf("%q (method %q): mirrors %v", data, req.Method, r.mirrors)
		}
	})
}

// halfClosedPipe is a net.Pipe end whose peer may have finished writing:
// net.Pipe refuses deadlines once either end is closed, where a TCP
// connection whose peer sent FIN still takes them (and returns EOF).
type halfClosedPipe struct{ net.Conn }

func (c halfClosedPipe) SetReadDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		return err
	}
	return nil
}
