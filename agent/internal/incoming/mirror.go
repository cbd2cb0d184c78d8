package incoming

import (
	"net"
	"sync"
	"time"

	"github.com/remocal/remocal/internal/relay"
	"github.com/remocal/remocal/protocol/wire"
)

// Mirroring must never slow the application down. Copies are queued per
// client with a bound; a client that falls further behind than the bound
// loses its copy of that connection (and is told by the stream ending)
// rather than exerting backpressure on the real traffic.
const (
	mirrorQueueChunks   = 256
	mirrorWriteDeadline = 10 * time.Second
)

// tee copies what flows through a connection to mirror sinks: bytes read
// from the peer as FromPeer, bytes written back as FromTarget.
type tee struct {
	net.Conn
	mu    sync.Mutex
	sinks []*mirrorSink
}

func newTee(c net.Conn) *tee { return &tee{Conn: c} }

func (t *tee) add(s *mirrorSink) { t.sinks = append(t.sinks, s) }

func (t *tee) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.copy(wire.FromPeer, p[:n])
	}
	return n, err
}

func (t *tee) Write(p []byte) (int, error) {
	n, err := t.Conn.Write(p)
	if n > 0 {
		t.copy(wire.FromTarget, p[:n])
	}
	return n, err
}

func (t *tee) CloseWrite() error { return relay.CloseWrite(t.Conn) }

// copy encodes once and hands the chunks to every sink. Reads and writes run
// on different goroutines; the lock keeps each sink's chunk order equal to
// the order the bytes were seen.
func (t *tee) copy(dir wire.Direction, p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(p) > 0 {
		n := min(len(p), wire.MaxChunkSize)
		chunk := wire.AppendChunk(make([]byte, 0, n+5), wire.Chunk{Dir: dir, Data: p[:n]})
		for _, s := range t.sinks {
			s.push(chunk)
		}
		p = p[n:]
	}
}

// finish ends every sink's stream once the connection is over.
func (t *tee) finish() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sinks {
		s.end()
	}
}

// mirrorSink delivers one client's copy of one connection.
type mirrorSink struct {
	queue   chan []byte
	mu      sync.Mutex
	ended   bool
	dropped bool
}

// startMirror opens the stream in the background: the connection is relayed
// at once and the copy catches up from the queue.
func (m *Manager) startMirror(s *subscription, info connInfo) *mirrorSink {
	sink := &mirrorSink{queue: make(chan []byte, mirrorQueueChunks)}
	s.connections.Add(1)
	m.wg.Go(func() {
		stream, err := m.openStream(s, &wire.IncomingConnection{
			Subscription: s.id, Connection: info.id, Mode: wire.ModeMirror, Port: info.port,
			Source: info.source.String(), Destination: info.dest.String(),
		})
		if err != nil {
			m.log.Warn("mirroring client unreachable", "subscription", s.id, "client", s.client.Name(), "err", err)
			sink.drop()
			for range sink.queue {
			}
			return
		}
		defer stream.Close()
		for chunk := range sink.queue {
			stream.SetWriteDeadline(time.Now().Add(mirrorWriteDeadline))
			if _, err := stream.Write(chunk); err != nil {
				sink.drop()
				relay.Abort(stream)
				for range sink.queue {
				}
				return
			}
		}
		if sink.wasDropped() {
			m.log.Warn("mirroring client fell behind; its copy of the connection was cut short", "subscription", s.id, "client", s.client.Name(), "connection", info.id)
			relay.Abort(stream)
		}
	})
	return sink
}

func (s *mirrorSink) push(chunk []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.dropped {
		return
	}
	select {
	case s.queue <- chunk:
	default:
		s.dropped = true
		s.ended = true
		close(s.queue)
	}
}

func (s *mirrorSink) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropped = true
}

func (s *mirrorSink) wasDropped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

func (s *mirrorSink) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.ended = true
		close(s.queue)
	}
}
