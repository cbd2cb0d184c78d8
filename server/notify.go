package server

import (
	"go.lsp.dev/protocol"
)

// broadcast tells every initialized client.
func (s *Server) broadcast(method string, params any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.clients {
		c.mu.Lock()
		ready := c.initialized && !c.shutdown
		c.mu.Unlock()
		if ready {
			c.notify(method, params)
		}
	}
}

// showMessage puts a message in front of the user of one client.
func (c *client) showMessage(t protocol.MessageType, msg string) {
	c.notify("window/showMessage", protocol.ShowMessageParams{Type: t, Message: msg})
}

// logMessage writes to one client's log view.
func (c *client) logMessage(t protocol.MessageType, msg string) {
	c.notify("window/logMessage", protocol.LogMessageParams{Type: t, Message: msg})
}

// progressParams mirrors $/progress with the client's token passed back
// unchanged, whatever its JSON type.
type progressParams struct {
	Token any `json:"token"`
	Value any `json:"value"`
}

// progress reports work-done progress against a client-provided token; a
// nil token or a client without the capability gets nothing.
type progress struct {
	c     *client
	token any
}

func (c *client) progress(token any) *progress {
	c.mu.Lock()
	ok := c.workDoneProgress
	c.mu.Unlock()
	if token == nil || !ok {
		return &progress{}
	}
	return &progress{c: c, token: token}
}

func (p *progress) begin(title, msg string) {
	if p.c != nil {
		p.c.notify("$/progress", progressParams{p.token, protocol.WorkDoneProgressBegin{Kind: "begin", Title: title, Message: &msg}})
	}
}

func (p *progress) report(msg string) {
	if p.c != nil {
		p.c.notify("$/progress", progressParams{p.token, protocol.WorkDoneProgressReport{Kind: "report", Message: &msg}})
	}
}

func (p *progress) end(msg string) {
	if p.c != nil {
		p.c.notify("$/progress", progressParams{p.token, protocol.WorkDoneProgressEnd{Kind: "end", Message: &msg}})
	}
}

// Broadcast sends a notification to every initialized client, for
// components outside this package that own state clients display.
func (s *Server) Broadcast(method string, params any) { s.broadcast(method, params) }
