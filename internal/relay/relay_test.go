package relay

import (
	"io"
	"net"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// A client that half-closes after its request still gets the whole reply:
// the EOF travels through the relay as a half-close, not a full close.
func TestHalfClosePropagates(t *testing.T) {
	client, relayDown := pair(t)
	relayUp, server := pair(t)
	done := make(chan Stats, 1)
	go func() { done <- Conns(relayDown, relayUp) }()

	go func() {
		req, _ := io.ReadAll(server) // until the client's EOF arrives
		server.Write(append([]byte("reply to "), req...))
		server.(*net.TCPConn).CloseWrite()
	}()
	client.Write([]byte("request"))
	client.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(client)
	if err != nil || string(reply) != "reply to request" {
		t.Fatalf("reply %q, %v", reply, err)
	}
	st := <-done
	if st.AToB != int64(len("request")) || st.BToA != int64(len("reply to request")) {
		t.Errorf("stats %+v", st)
	}
}

func TestErrorAbortsBothSides(t *testing.T) {
	client, relayDown := pair(t)
	relayUp, server := pair(t)
	done := make(chan struct{})
	go func() {
		Conns(relayDown, relayUp)
		close(done)
	}()
	// The server vanishes with a reset: the client must not hang.
	server.(*net.TCPConn).SetLinger(0)
	server.Close()
	client.Write([]byte("anyone?"))
	io.ReadAll(client)
	<-done
}
