// Package daemonclient talks to the remocal daemon from Go: `remocal rpc`,
// `remocal sessions` and the daemon's own integration tests use it, as an
// IDE extension would speak the same protocol from TypeScript or Java.
package daemonclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"go.lsp.dev/jsonrpc2"
	"go.lsp.dev/protocol"
	"go.lsp.dev/uri"

	"github.com/remocal/remocal/protocol/daemon"
)

// Notification is a notification the daemon sent.
type Notification struct {
	Method string
	Params jsonrpc2.RawMessage
}

// Client is an initialized connection to the daemon.
type Client struct {
	conn   jsonrpc2.Conn
	Server protocol.ServerInfo
	// ProtocolVersion is the daemon's protocol/daemon.ProtocolVersion;
	// empty for daemons older than 1.1.
	ProtocolVersion string

	notes chan Notification
}

// Options configure Dial.
type Options struct {
	Name    string
	Version string
	// Folders are workspace folders (absolute paths) whose configuration
	// the daemon should watch for this client.
	Folders []string
	// WorkDoneProgress announces support for $/progress.
	WorkDoneProgress bool
}

// Dial connects to the daemon's socket and runs initialize/initialized.
func Dial(ctx context.Context, socket string, opts Options) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("connect to the remocal daemon at %s: %w", socket, err)
	}
	return New(ctx, nc, opts)
}

// New initializes a client over an established connection.
func New(ctx context.Context, nc net.Conn, opts Options) (*Client, error) {
	c := &Client{conn: jsonrpc2.NewConn(jsonrpc2.NewHeaderStream(nc)), notes: make(chan Notification, 1024)}
	c.conn.Go(context.Background(), c.handle)
	params := protocol.InitializeParams{ClientInfo: protocol.ClientInfo{Name: opts.Name}}
	if opts.Version != "" {
		params.ClientInfo.Version = protocol.NewOptional(opts.Version)
	}
	if opts.WorkDoneProgress {
		t := true
		params.Capabilities.Window = &protocol.WindowClientCapabilities{WorkDoneProgress: &t}
	}
	var folders []protocol.WorkspaceFolder
	for _, f := range opts.Folders {
		folders = append(folders, protocol.WorkspaceFolder{URI: uri.File(f), Name: f})
	}
	params.WorkspaceFolders = protocol.NewNullable(folders)
	var res protocol.InitializeResult
	if _, err := c.conn.Call(ctx, "initialize", params, &res); err != nil {
		c.conn.Close()
		return nil, fmt.Errorf("initialize: %w", err)
	}
	c.Server = res.ServerInfo
	if len(res.Capabilities.Experimental) > 0 {
		var ex daemon.InitializeExperimental
		if err := json.Unmarshal(res.Capabilities.Experimental, &ex); err == nil {
			c.ProtocolVersion = ex.Remocal.ProtocolVersion
		}
	}
	if err := c.conn.Notify(ctx, "initialized", struct{}{}); err != nil {
		c.conn.Close()
		return nil, err
	}
	return c, nil
}

// handle receives the daemon's notifications; the daemon sends no
// requests.
func (c *Client) handle(ctx context.Context, req *jsonrpc2.Request) (any, error) {
	if req.IsCall() {
		return nil, jsonrpc2.ErrMethodNotFound
	}
	// The request borrows the transport's frame until this returns.
	n := Notification{Method: strings.Clone(req.Method()), Params: append(jsonrpc2.RawMessage(nil), req.Params()...)}
	select {
	case c.notes <- n:
	default: // nobody is reading; drop rather than stall the connection
	}
	return nil, nil
}

// Call sends a request and decodes its result into result (which may be
// nil).
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	_, err := c.conn.Call(ctx, method, params, result)
	return err
}

// Notifications delivers what the daemon announces, in order.
func (c *Client) Notifications() <-chan Notification { return c.notes }

// Done is closed when the connection ends.
func (c *Client) Done() <-chan struct{} { return c.conn.Done() }

// Close runs shutdown and exit, then closes the connection.
func (c *Client) Close() error {
	ctx := context.Background()
	c.conn.Call(ctx, "shutdown", nil, nil)
	c.conn.Notify(ctx, "exit", nil)
	return c.conn.Close()
}
