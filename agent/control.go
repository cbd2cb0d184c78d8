package agent

import (
	"context"

	"github.com/remocal/remocal/protocol/glob"
	"github.com/remocal/remocal/protocol/wire"
)

// handle answers one control request. Messages arrive validated.
func (s *session) handle(ctx context.Context, msg wire.Message) (wire.Message, error) {
	fs := files{proc: s.agent.proc}
	switch m := msg.(type) {
	case *wire.Ping:
		return &wire.PingResult{Payload: m.Payload}, nil
	case *wire.EnvGet:
		return s.agent.env(m)
	case *wire.FileRead:
		return fs.read(m)
	case *wire.FileStat:
		return fs.stat(m)
	case *wire.FileReadlink:
		return fs.readlink(m)
	case *wire.FileReaddir:
		return fs.readdir(m)
	case *wire.FileAccess:
		if err := fs.access(m); err != nil {
			return nil, err
		}
		return &wire.FileAccessResult{}, nil
	case *wire.Subscribe:
		if s.agent.cfg.Targetless {
			return nil, wire.Errorf(wire.CodeUnsupported, "a targetless agent has no incoming traffic; target a pod or workload to mirror or steal its port %d", m.Port)
		}
		id, err := s.agent.incoming.Subscribe(ctx, s, m)
		if err != nil {
			return nil, err
		}
		return &wire.SubscribeResult{ID: id}, nil
	case *wire.Unsubscribe:
		if err := s.agent.incoming.Unsubscribe(s, m.ID); err != nil {
			return nil, err
		}
		return &wire.UnsubscribeResult{}, nil
	default:
		return nil, wire.Errorf(wire.CodeUnsupported, "%s is not a request the agent answers", msg.MessageType())
	}
}

func (a *Agent) env(req *wire.EnvGet) (*wire.EnvGetResult, error) {
	if a.cfg.Targetless {
		return &wire.EnvGetResult{Vars: map[string]string{}}, nil
	}
	all, err := a.proc.Environ()
	if err != nil {
		return nil, wire.FromErrno(wire.CodeUnavailable, err, "read the target's environment")
	}
	sel := glob.NewSelector(req.Include, req.Exclude)
	vars := make(map[string]string)
	for k, v := range all {
		if sel.Selects(k) {
			vars[k] = v
		}
	}
	return &wire.EnvGetResult{Vars: vars}, nil
}
