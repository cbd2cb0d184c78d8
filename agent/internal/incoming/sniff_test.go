package incoming

import (
	"bufio"
	"net"
	"testing"

	"github.com/remocal/remocal/protocol/wire"
)

func TestSniff(t *testing.T) {
	cases := map[string]proto{
		"GET / HTTP/1.1\r\n":           protoHTTP1,
		"OPTIONS * HTTP/1.1\r\n":       protoHTTP1,
		"PRI * HTTP/2.0\r\n\r\nSM\r\n": protoHTTP2,
		"\x16\x03\x01\x02\x00":         protoOther, // TLS client hello
		"*1\r\n$4\r\nPING\r\n":         protoOther, // Redis
		"get / HTTP/1.1\r\n":           protoOther, // methods are upper case
	}
	for input, want := range cases {
		client, server := net.Pipe()
		go func() {
			client.Write([]byte(input))
		}()
		br := bufio.NewReader(server)
		if got := sniff(server, br, sniffTimeout); got != want {
			t.Errorf("sniff(%q) = %v, want %v", input, got, want)
		}
		// Sniffing must not consume anything.
		peek, _ := br.Peek(br.Buffered())
		if string(peek) != input[:len(peek)] || len(peek) == 0 {
			t.Errorf("sniff(%q) consumed input; buffered %q", input, peek)
		}
		client.Close()
		server.Close()
	}
}

// A server-first protocol sends nothing from the client; sniffing gives up
// after its timeout and the connection passes through.
func TestSniffSilentClient(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	if got := sniff(server, bufio.NewReader(server), sniffTimeout); got != protoOther {
		t.Errorf("silent client sniffed as %v", got)
	}
}

func TestMirrorSinkDropsWhenBehind(t *testing.T) {
	s := &mirrorSink{queue: make(chan []byte, 2)}
	s.push([]byte("a"))
	s.push([]byte("b"))
	s.push([]byte("c")) // over the bound: the sink gives up instead of blocking
	if !s.wasDropped() {
		t.Fatal("a full sink must drop its copy")
	}
	var got []string
	for chunk := range s.queue {
		got = append(got, string(chunk))
	}
	if len(got) != 2 {
		t.Errorf("queued chunks after drop = %q", got)
	}
	s.push([]byte("d")) // must not panic on the closed queue
	s.end()
}

func TestTeeOrdersAndSplitsChunks(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	tee := newTee(server)
	sink := &mirrorSink{queue: make(chan []byte, 16)}
	tee.add(sink)
	big := make([]byte, wire.MaxChunkSize+10)
	go func() {
		client.Write([]byte("req"))
		buf := make([]byte, len(big))
		n := 0
		for n < len(big) {
			m, _ := client.Read(buf[n:])
			n += m
		}
	}()
	buf := make([]byte, 3)
	if _, err := tee.Read(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := tee.Write(big); err != nil {
		t.Fatal(err)
	}
	tee.finish()
	var dirs []wire.Direction
	var sizes []int
	for enc := range sink.queue {
		c, err := wire.ReadChunk(bytesReader(enc))
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, c.Dir)
		sizes = append(sizes, len(c.Data))
	}
	if len(dirs) != 3 || dirs[0] != wire.FromPeer || dirs[1] != wire.FromTarget || sizes[1] != wire.MaxChunkSize || sizes[2] != 10 {
		t.Errorf("chunks: dirs %v sizes %v", dirs, sizes)
	}
}
