package server

import (
	"context"
	"sync"

	"go.lsp.dev/jsonrpc2"
)

// replyWatch runs an action once the response to one request is on the
// wire. jsonrpc2 refuses to write once a connection is closing, so a
// request whose effect closes connections (daemon shutdown) must not take
// effect before its own reply is written, or the caller sees EOF instead
// of its answer.
type replyWatch struct {
	jsonrpc2.Stream

	mu    sync.Mutex
	after map[jsonrpc2.ID]func()
}

func newReplyWatch(s jsonrpc2.Stream) *replyWatch {
	return &replyWatch{Stream: s, after: map[jsonrpc2.ID]func(){}}
}

// afterReply runs fn once the reply to id has been written (or its write
// failed), or when the connection ends without writing it.
func (w *replyWatch) afterReply(id jsonrpc2.ID, fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.after[id] = fn
}

func (w *replyWatch) Write(ctx context.Context, msg jsonrpc2.Message) (int64, error) {
	n, err := w.Stream.Write(ctx, msg)
	if fn := w.take(msg); fn != nil {
		fn()
	}
	return n, err
}

// take returns the action waiting for msg, if msg is a reply somebody
// waits for. Replies are re-encoded to learn their id only while an action
// waits, which is rare.
func (w *replyWatch) take(msg jsonrpc2.Message) func() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.after) == 0 {
		return nil
	}
	body, err := jsonrpc2.EncodeMessage(msg)
	if err != nil {
		return nil
	}
	decoded, err := jsonrpc2.DecodeMessage(body)
	if err != nil {
		return nil
	}
	resp, ok := decoded.(*jsonrpc2.Response)
	if !ok {
		return nil
	}
	fn := w.after[resp.ID()]
	delete(w.after, resp.ID())
	return fn
}

// flush runs the actions whose replies were never written: the connection
// ended first, and the request still takes effect.
func (w *replyWatch) flush() {
	w.mu.Lock()
	pending := w.after
	w.after = map[jsonrpc2.ID]func(){}
	w.mu.Unlock()
	for _, fn := range pending {
		fn()
	}
}

type requestIDKey struct{}

// afterReply runs fn once the reply to the request ctx belongs to has been
// written; outside a call it runs fn at once.
func (c *client) afterReply(ctx context.Context, fn func()) {
	id, ok := ctx.Value(requestIDKey{}).(jsonrpc2.ID)
	if !ok {
		fn()
		return
	}
	c.replies.afterReply(id, fn)
}
