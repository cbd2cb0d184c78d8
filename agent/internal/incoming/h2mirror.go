package incoming

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/remocal/remocal/protocol/wire"
)

// errMirrorBehind ends a mirrored stream's body when its client fell more
// than mirrorBodyLimit behind the real stream; errMirrorCut when the real
// stream ended before its body did. Either way the copy is reset, never
// delivered as if complete.
var (
	errMirrorBehind = errors.New("mirroring client fell behind; its copy of the stream was cut")
	errMirrorCut    = errors.New("the stream ended before its body")
)

// mirrorStream starts a copy of r for every mirror: the same request, its
// body fed as the real stream's body is read, each copy on its own
// goroutine so that the real stream never waits for a mirror. Clients that
// did not list wire.CapHTTP2 get no copy (they would read the h2c bytes as
// mirror chunks).
func (h *h2Conn) mirrorStream(r *http.Request, mirrors []*subscription, seq uint64) {
	var pipes []*bodyPipe
	for _, s := range mirrors {
		if !clientHas(s.client, wire.CapHTTP2) {
			h.log.Warn("not mirroring an HTTP/2 stream to a client without HTTP/2 support; upgrade remocal there", "subscription", s.id, "client", s.client.Name())
			continue
		}
		select {
		case h.copies <- struct{}{}:
		default:
			h.log.Warn("too many mirrored HTTP/2 streams in flight on this connection; not mirroring this one", "subscription", s.id, "limit", cap(h.copies))
			continue
		}
		if !h.begin() {
			<-h.copies
			return
		}
		var p *bodyPipe // nil: the stream has no body
		if r.Body != nil && r.Body != http.NoBody {
			p = newBodyPipe()
			pipes = append(pipes, p)
		}
		go func() {
			defer h.running.Done()
			defer func() { <-h.copies }()
			h.deliverMirror(r, s, p, seq)
		}()
	}
	if len(pipes) > 0 {
		r.Body = &teeBody{ReadCloser: r.Body, pipes: pipes}
	}
}

// deliverMirror sends one copy and discards its answer. The copy may run
// on for mirrorWriteDeadline after the real stream ended (even when the
// peer's whole connection did), then it is cut.
func (h *h2Conn) deliverMirror(r *http.Request, s *subscription, p *bodyPipe, seq uint64) {
	ctx, cancel := context.WithCancel(h.m.ctx)
	defer cancel()
	stop := context.AfterFunc(r.Context(), func() {
		t := time.AfterFunc(mirrorWriteDeadline, cancel)
		context.AfterFunc(ctx, func() { t.Stop() })
	})
	defer stop()
	var body io.ReadCloser = http.NoBody
	if p != nil {
		body = p
		defer p.finish(errMirrorCut) // lets the real stream's writes go nowhere
	}
	up, err := h.peer(s, wire.ModeMirror)
	if err != nil {
		h.log.Warn("mirroring client unreachable", "subscription", s.id, "client", s.client.Name(), "err", err)
		return
	}
	s.requests.Add(1)
	res, err := up.cc.RoundTrip(upstreamRequest(ctx, r, body))
	if err != nil {
		h.log.Debug("mirrored HTTP/2 stream not delivered", "subscription", s.id, "stream", seq, "err", err)
		return
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
}

// clientHas reports whether a client listed capability c in its hello.
func clientHas(c Client, capability wire.Capability) bool {
	cc, ok := c.(interface{ HasCapability(wire.Capability) bool })
	return ok && cc.HasCapability(capability)
}

// teeBody is a request body whose reads are copied to mirror pipes.
type teeBody struct {
	io.ReadCloser
	pipes []*bodyPipe
	done  bool
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	for _, pipe := range t.pipes {
		pipe.write(p[:n])
	}
	if err != nil {
		t.done = true
		final := err
		if errors.Is(err, io.EOF) {
			final = nil
		}
		for _, pipe := range t.pipes {
			pipe.finish(final)
		}
	}
	return n, err
}

// Close is called by the server when the stream is over; mirrors that did
// not see the whole body get it cut.
func (t *teeBody) Close() error {
	if !t.done {
		for _, pipe := range t.pipes {
			pipe.finish(errMirrorCut)
		}
	}
	return t.ReadCloser.Close()
}

// bodyPipe carries one mirror's copy of a body: writes never block (the
// real stream must not wait); more than mirrorBodyLimit unread ends the
// copy with errMirrorBehind.
type bodyPipe struct {
	mu    sync.Mutex
	buf   []byte
	err   error // set once: nil after finish(nil) means EOF
	ended bool
	ready chan struct{} // signalled when buf grows or the pipe ends
}

func newBodyPipe() *bodyPipe { return &bodyPipe{ready: make(chan struct{}, 1)} }

func (p *bodyPipe) signal() {
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

func (p *bodyPipe) write(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended || len(b) == 0 {
		return
	}
	if len(p.buf)+len(b) > mirrorBodyLimit {
		p.ended, p.err, p.buf = true, errMirrorBehind, nil
	} else {
		p.buf = append(p.buf, b...)
	}
	p.signal()
}

// finish ends the body: with err, or cleanly for nil. Only the first call
// counts.
func (p *bodyPipe) finish(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ended {
		p.ended, p.err = true, err
	}
	p.signal()
}

func (p *bodyPipe) Read(b []byte) (int, error) {
	for {
		p.mu.Lock()
		if len(p.buf) > 0 {
			n := copy(b, p.buf)
			p.buf = p.buf[n:]
			p.mu.Unlock()
			return n, nil
		}
		if p.ended {
			err := p.err
			p.mu.Unlock()
			if err == nil {
				return 0, io.EOF
			}
			return 0, err
		}
		p.mu.Unlock()
		<-p.ready
	}
}

// Close is the Transport giving up on the body (the copy was reset).
func (p *bodyPipe) Close() error {
	p.finish(errMirrorCut)
	return nil
}
