// Package muxwrite joins each yamux data frame's header and body into one
// write on the connection under the multiplexer.
//
// yamux writes a data frame as two writes: its 12-byte header, then its
// body. Over a unix socket or TCP that is two system calls; over a
// Kubernetes port-forward each write becomes its own SPDY data frame and
// WebSocket message (and TLS record) through the apiserver and kubelet, so
// a small request costs twice the messages it needs (docs/performance.md,
// Kubernetes). The bytes on the connection are exactly yamux's; only the
// boundaries between writes change.
package muxwrite

import (
	"encoding/binary"
	"io"
	"net"
)

const (
	// headerLen and typeData are yamux's protocol (version 0): version,
	// type, flags, stream id, length.
	headerLen = 12
	typeData  = 0
	// maxJoin bounds the body copied behind a header: above it the
	// header's extra write costs less than copying the body.
	maxJoin = 64 << 10
)

// Wrap returns conn with each data frame written at once. Like yamux's
// own use of its connection, the result's Write is not safe for
// concurrent use: only yamux's send loop may write. A net.Conn stays one
// (yamux names its peer by the connection's addresses).
func Wrap(conn io.ReadWriteCloser) io.ReadWriteCloser {
	w := &writer{ReadWriteCloser: conn}
	if nc, ok := conn.(net.Conn); ok {
		return &netConn{writer: w, Conn: nc}
	}
	return w
}

type writer struct {
	io.ReadWriteCloser
	hdr  [headerLen]byte
	held bool
	buf  []byte
}

func (w *writer) Write(p []byte) (int, error) {
	if w.held {
		w.held = false
		if int(binary.BigEndian.Uint32(w.hdr[8:])) == len(p) && len(p) <= maxJoin {
			w.buf = append(append(w.buf[:0], w.hdr[:]...), p...)
			n, err := w.ReadWriteCloser.Write(w.buf)
			return max(n-headerLen, 0), err
		}
		// Not the body the header announced (yamux dropped a timed-out
		// body) or too large to copy: the same bytes, in two writes.
		if _, err := w.ReadWriteCloser.Write(w.hdr[:]); err != nil {
			return 0, err
		}
	} else if len(p) == headerLen && p[1] == typeData && binary.BigEndian.Uint32(p[8:]) > 0 {
		// A data frame's header: its body is yamux's next write.
		copy(w.hdr[:], p)
		w.held = true
		return len(p), nil
	}
	return w.ReadWriteCloser.Write(p)
}

// netConn is the writer over a net.Conn, keeping its addresses and
// deadlines.
type netConn struct {
	*writer
	net.Conn
}

func (c *netConn) Read(p []byte) (int, error)  { return c.writer.Read(p) }
func (c *netConn) Write(p []byte) (int, error) { return c.writer.Write(p) }
func (c *netConn) Close() error                { return c.writer.Close() }
