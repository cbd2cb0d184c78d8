package kube

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	gwebsocket "github.com/gorilla/websocket"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"
	pfconstants "k8s.io/apimachinery/pkg/util/portforward"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/websocket"
)

// tunnelDialer opens a port-forward connection as SPDY tunnelled through a
// WebSocket, like client-go's dialer, except that every SPDY frame travels
// as one WebSocket message.
//
// Why: spdystream writes a data frame in three pieces (stream id, flags and
// length, payload) and client-go's tunnelling connection sends each Write
// as its own WebSocket message: three masked, flushed messages, three TLS
// records and three reads at the apiserver per frame. One message per frame
// is a third of that for the same bytes (docs/performance.md, Kubernetes).
type tunnelDialer struct {
	url       *url.URL
	transport http.RoundTripper
	holder    websocket.ConnectionHolder
}

func newTunnelDialer(u *url.URL, config *rest.Config) (*tunnelDialer, error) {
	rt, holder, err := websocket.RoundTripperFor(config)
	if err != nil {
		return nil, err
	}
	return &tunnelDialer{url: u, transport: rt, holder: holder}, nil
}

// Dial implements httpstream.Dialer.
func (d *tunnelDialer) Dial(protocols ...string) (httpstream.Connection, string, error) {
	req, err := http.NewRequest(http.MethodGet, d.url.String(), nil) // WebSocket upgrades are GETs
	if err != nil {
		return nil, "", err
	}
	tunnelled := make([]string, len(protocols))
	for i, p := range protocols {
		tunnelled[i] = pfconstants.WebsocketsSPDYTunnelingPrefix + p
	}
	ws, err := websocket.Negotiate(d.transport, d.holder, req, tunnelled...)
	if err != nil {
		return nil, "", err
	}
	if ws == nil {
		return nil, "", fmt.Errorf("the apiserver's WebSocket upgrade for %s returned no connection", d.url.Path)
	}
	conn := &frameConn{TunnelingConnection: portforward.NewTunnelingConnection("client", ws), ws: ws}
	sc, err := spdy.NewClientConnectionWithPings(conn, portforward.PingPeriod)
	if err != nil {
		conn.Close()
		return nil, "", err
	}
	return sc, strings.TrimPrefix(ws.Subprotocol(), pfconstants.WebsocketsSPDYTunnelingPrefix), nil
}

// spdyHeaderLen is the size of every SPDY/3 frame's header; its last 24
// bits are the length of what follows (control and data frames alike).
const spdyHeaderLen = 8

// frameConn is the tunnelling connection with writes grouped by SPDY frame:
// a WebSocket message opens at a frame's first byte and is sent at its
// last. It reads, closes and reports addresses as client-go's does.
//
// spdystream writes each frame completely, under its own lock, before the
// next, so a message is never left open waiting for another writer.
type frameConn struct {
	*portforward.TunnelingConnection
	ws *gwebsocket.Conn

	mu   sync.Mutex
	msg  io.WriteCloser // the open message, nil between frames
	hdr  [spdyHeaderLen]byte
	nhdr int // header bytes seen of the current frame
	left int // payload bytes the current frame still owes
}

var _ net.Conn = (*frameConn)(nil)

// Write passes p on into the current frame's message, opening and sending
// messages at frame boundaries.
func (c *frameConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	written := 0
	for len(p) > 0 {
		if c.msg == nil {
			w, err := c.ws.NextWriter(gwebsocket.BinaryMessage)
			if err != nil {
				return written, err
			}
			c.msg, c.nhdr, c.left = w, 0, 0
		}
		var n int
		if c.nhdr < spdyHeaderLen {
			n = copy(c.hdr[c.nhdr:], p)
			c.nhdr += n
			if c.nhdr == spdyHeaderLen {
				c.left = int(binary.BigEndian.Uint32(c.hdr[4:]) & 0xffffff)
			}
		} else {
			n = min(c.left, len(p))
			c.left -= n
		}
		if _, err := c.msg.Write(p[:n]); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
		if c.nhdr == spdyHeaderLen && c.left == 0 {
			err := c.msg.Close() // sends the message
			c.msg = nil
			if err != nil {
				return written, err
			}
		}
	}
	return written, nil
}
