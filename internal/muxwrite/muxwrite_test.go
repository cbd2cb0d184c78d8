package muxwrite

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/yamux"

	"github.com/remocal/remocal/protocol/wire"
)

// countingConn counts the writes reaching the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// A real yamux session over loopback TCP: small messages cost one write
// each instead of two, large ones arrive intact, and the session keeps
// its peer's address.
func TestDataFramesAreOneWrite(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		srv, err := yamux.Server(Wrap(c), wire.MuxConfig())
		if err != nil {
			return
		}
		defer srv.Close()
		for {
			s, err := srv.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(s, s); s.Close() }()
		}
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingConn{Conn: raw}
	cli, err := yamux.Client(Wrap(counted), wire.MuxConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if cli.RemoteAddr().String() != l.Addr().String() {
		t.Errorf("the session's peer is %v, want %v", cli.RemoteAddr(), l.Addr())
	}
	s, err := cli.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const small = 200
	before := counted.writes.Load()
	buf := make([]byte, 16)
	for i := range small {
		msg := bytes.Repeat([]byte{byte(i)}, 16)
		if _, err := s.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf); err != nil || !bytes.Equal(buf, msg) {
			t.Fatalf("echo %d: %q, %v", i, buf, err)
		}
	}
	// One write per message; window updates are rare at 16 bytes each.
	if n := counted.writes.Load() - before; n < small || n > small+small/10 {
		t.Errorf("%d writes for %d small messages, want about one each", n, small)
	}
	big := bytes.Repeat([]byte("remocal!"), 1<<17) // 1 MiB: bodies above maxJoin
	go s.Write(big)
	got := make([]byte, len(big))
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("echo of 1 MiB: %v, equal %v", err, bytes.Equal(got, big))
	}
}
