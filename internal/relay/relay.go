// Package relay copies bytes between two connections in both directions
// until both are done, the way a proxy must: an EOF in one direction becomes
// a half-close of the other side's write half, so request/response protocols
// that signal "done" with a half-close keep working, and an error in either
// direction aborts both.
//
// It knows the two kinds of connection remocal relays between: kernel
// sockets, which have CloseWrite, and yamux streams, whose Close is already a
// half-close (it sends FIN and leaves reading open).
package relay

import (
	"io"
	"net"
	"sync"
	"time"
)

// bufSize is the relay's copy buffer. A multiplexed stream pays a frame
// header, a channel handoff and a copy per write, so large writes matter far
// more than for a socket (io.Copy's default is 32 KiB).
const bufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Stats counts the bytes a relay moved.
type Stats struct {
	AToB, BToA int64
}

// Conns relays between a and b and returns when both directions ended. It
// closes neither connection fully on success; callers own them.
func Conns(a, b net.Conn) Stats {
	var st Stats
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.BToA = copyHalf(a, b)
	}()
	st.AToB = copyHalf(b, a)
	<-done
	return st
}

func copyHalf(dst, src net.Conn) int64 {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	// Hiding ReaderFrom/WriterTo keeps io.CopyBuffer on our buffer; the
	// sockets' own fallbacks would use 32 KiB.
	n, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *buf)
	if err != nil {
		Abort(dst)
		Abort(src)
		return n
	}
	CloseWrite(dst)
	return n
}

type closeWriter interface{ CloseWrite() error }

// CloseWrite shuts the write half of c: CloseWrite for sockets, Close for
// streams whose Close is a half-close.
func CloseWrite(c net.Conn) error {
	if cw, ok := c.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// Abort ends both halves of c at once and wakes anyone blocked on it. For a
// yamux stream Close alone would leave a pending Read waiting for the peer's
// FIN; the expired deadline releases it.
func Abort(c net.Conn) {
	c.SetDeadline(time.Unix(1, 0))
	c.Close()
}
