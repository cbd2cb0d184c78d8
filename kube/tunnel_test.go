package kube

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	gwebsocket "github.com/gorilla/websocket"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"
	pfconstants "k8s.io/apimachinery/pkg/util/portforward"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
)

// tunnelServer is the apiserver's side of a SPDY-over-WebSocket tunnel on
// loopback: it checks that each WebSocket message holds exactly one SPDY
// frame, then serves the SPDY connection, echoing every stream.
type tunnelServer struct {
	mu       sync.Mutex
	messages int
	bad      []string
}

func (ts *tunnelServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up := gwebsocket.Upgrader{Subprotocols: []string{pfconstants.WebsocketsSPDYTunnelingPortForwardV1}}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	pr, pw := io.Pipe()
	go func() {
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			ts.check(msg)
			if _, err := pw.Write(msg); err != nil {
				return
			}
		}
	}()
	conn := &pipedConn{TunnelingConnection: portforward.NewTunnelingConnection("server", ws), r: pr}
	streams := make(chan httpstream.Stream, 4)
	sc, err := spdy.NewServerConnection(conn, func(s httpstream.Stream, _ <-chan struct{}) error {
		streams <- s
		return nil
	})
	if err != nil {
		return
	}
	defer sc.Close()
	for {
		select {
		case s := <-streams:
			go func() {
				io.Copy(s, s)
				s.Close()
			}()
		case <-sc.CloseChan():
			return
		}
	}
}

func (ts *tunnelServer) check(msg []byte) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.messages++
	if len(msg) < spdyHeaderLen {
		ts.bad = append(ts.bad, fmt.Sprintf("a message of %d bytes, shorter than a SPDY header", len(msg)))
		return
	}
	if want := spdyHeaderLen + int(binary.BigEndian.Uint32(msg[4:])&0xffffff); len(msg) != want {
		ts.bad = append(ts.bad, fmt.Sprintf("a message of %d bytes holding a frame of %d", len(msg), want))
	}
}

// pipedConn reads what the checking loop passed on.
type pipedConn struct {
	*portforward.TunnelingConnection
	r io.Reader
}

func (c *pipedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Every SPDY frame, control or data, of any size, travels as one WebSocket
// message, and the bytes arrive intact both ways.
func TestTunnelSendsOneMessagePerFrame(t *testing.T) {
	ts := &tunnelServer{}
	srv := httptest.NewServer(ts)
	defer srv.Close()
	u, err := url.Parse(srv.URL + "/api/v1/namespaces/x/pods/y/portforward")
	if err != nil {
		t.Fatal(err)
	}
	d, err := newTunnelDialer(u, &rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	conn, proto, err := d.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if proto != portforward.PortForwardProtocolV1Name {
		t.Errorf("negotiated %q", proto)
	}
	stream, err := conn.CreateStream(http.Header{"Streamtype": []string{"data"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 12, 4096, 100 << 10, 1 << 20} {
		payload := bytes.Repeat([]byte{byte(size)}, size)
		errc := make(chan error, 1)
		go func() {
			_, err := stream.Write(payload)
			errc <- err
		}()
		got := make([]byte, size)
		if _, err := io.ReadFull(stream, got); err != nil {
			t.Fatalf("echo of %d bytes: %v", size, err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("echo of %d bytes differs", size)
		}
	}
	stream.Close()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	// A SYN_STREAM and five data frames at least.
	if ts.messages < 6 || len(ts.bad) > 0 {
		t.Errorf("%d messages; not one frame each: %v", ts.messages, ts.bad)
	}
}
