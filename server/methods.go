package server

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"go.lsp.dev/jsonrpc2"

	"github.com/remocal/remocal/protocol/daemon"
)

// method is a remocal/* handler. async handlers release the connection's
// read loop first: they wait on the network or on processes, and the
// client's other requests (a cancel among them) must not queue behind them.
type method struct {
	fn    func(ctx context.Context, c *client, params jsonrpc2.RawMessage) (any, error)
	async bool
}

var methods = map[string]method{
	daemon.MethodDaemonInfo: {fn: func(ctx context.Context, c *client, _ jsonrpc2.RawMessage) (any, error) {
		return c.s.info(), nil
	}},
	daemon.MethodDaemonShutdown: {fn: withParams(func(ctx context.Context, c *client, p daemon.DaemonShutdownParams) (any, error) {
		return nil, c.s.requestShutdown(ctx, c, p.Force)
	})},
	daemon.MethodNamespaces: {fn: func(ctx context.Context, c *client, _ jsonrpc2.RawMessage) (any, error) {
		ns := c.s.opts.Targets.Namespaces()
		if ns == nil {
			ns = []daemon.Namespace{}
		}
		return daemon.NamespacesResult{Namespaces: ns}, nil
	}},
	daemon.MethodTargets: {fn: withParams(func(ctx context.Context, c *client, p daemon.TargetsParams) (any, error) {
		return daemon.TargetsResult{Targets: c.s.opts.Targets.List(ctx, p)}, nil
	})},
	daemon.MethodConfigResolve: {fn: withParams(func(ctx context.Context, c *client, p daemon.ConfigParams) (any, error) {
		return c.s.configs.resolve(p, true)
	})},
	daemon.MethodConfigVerify: {fn: withParams(func(ctx context.Context, c *client, p daemon.ConfigParams) (any, error) {
		return c.s.configs.resolve(p, false)
	})},
	daemon.MethodSessionStart: {async: true, fn: withParams(func(ctx context.Context, c *client, p daemon.SessionStartParams) (any, error) {
		return c.s.sessions.start(ctx, c, p)
	})},
	daemon.MethodSessionStop: {async: true, fn: withParams(func(ctx context.Context, c *client, p daemon.SessionParams) (any, error) {
		return nil, c.s.sessions.stop(ctx, p.ID)
	})},
	daemon.MethodSessionList: {fn: func(ctx context.Context, c *client, _ jsonrpc2.RawMessage) (any, error) {
		return daemon.SessionListResult{Sessions: c.s.sessions.list(), Remote: c.s.remoteSessions()}, nil
	}},
	daemon.MethodSessionDetail: {async: true, fn: withParams(func(ctx context.Context, c *client, p daemon.SessionParams) (any, error) {
		return c.s.sessions.detail(ctx, p.ID)
	})},
	daemon.MethodSessionKill: {async: true, fn: withParams(func(ctx context.Context, c *client, p daemon.RemoteSessionParams) (any, error) {
		return nil, c.s.killRemote(ctx, p)
	})},
}

// withParams decodes a method's parameters, with an error that says what
// was wrong, before calling fn.
func withParams[P any](fn func(ctx context.Context, c *client, p P) (any, error)) func(context.Context, *client, jsonrpc2.RawMessage) (any, error) {
	return func(ctx context.Context, c *client, raw jsonrpc2.RawMessage) (any, error) {
		var p P
		if len(raw) > 0 && string(raw) != "null" {
			if err := jsonrpc2.DefaultCodec.Unmarshal(raw, &p); err != nil {
				return nil, daemon.Errorf(daemon.CodeInvalidParams, "invalid params: %v", err)
			}
		}
		return fn(ctx, c, p)
	}
}

func methodList() string {
	names := make([]string, 0, len(methods))
	for n := range methods {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// folderPath accepts a workspace folder as a file:// URI or an absolute
// path.
func folderPath(s string) (string, error) {
	if strings.HasPrefix(s, "file://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", err
		}
		s = u.Path
	}
	if !filepath.IsAbs(s) {
		return "", fmt.Errorf("workspace folder %q is not an absolute path or file:// URI", s)
	}
	return filepath.Clean(s), nil
}
