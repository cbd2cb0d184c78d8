package operator

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/wire"
)

// PLACEHOLDER, to be replaced by operator/internal/broker (written in
// parallel): until it lands, the operator serves its API with no sessions
// and refuses every session with a wire error. defaultBackend is the one
// line to change.

// defaultBackend builds the built-in backend.
func defaultBackend(_ context.Context, d Deps) (Backend, error) {
	return &unavailable{version: d.Version}, nil
}

// unavailable is a Backend without a broker.
type unavailable struct {
	version string
}

// errNoBroker is what clients are told.
var errNoBroker = wire.Errorf(wire.CodeUnavailable,
	"this remocal operator has no session broker yet (a development build); sessions through the operator are not available, use remocal without the operator")

// handshakeTimeout bounds how long a client may take to say hello.
const handshakeTimeout = 10 * time.Second

// Serve answers the client's hello with errNoBroker and hangs up.
func (u *unavailable) Serve(_ context.Context, conn net.Conn, _ operator.UserInfo, _, _ string) {
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return
	}
	if err := wire.WritePreamble(conn); err != nil {
		return
	}
	if err := wire.ReadPreamble(conn); err != nil {
		return
	}
	var id uint64
	if env, err := wire.ReadEnvelope(conn, wire.MaxHandshakeFrameSize); err == nil {
		id = env.ID
	}
	_ = wire.WriteEnvelope(conn, wire.ErrorEnvelope(id, errNoBroker))
}

func (u *unavailable) List(string) ([]operator.Session, string) { return nil, "1" }

func (u *unavailable) Get(string, string) (operator.Session, bool) { return operator.Session{}, false }

// Watch sends nothing until ctx ends: there are never sessions.
func (u *unavailable) Watch(ctx context.Context, _, rv string) (<-chan backend.SessionEvent, error) {
	if n, err := strconv.Atoi(rv); rv != "" && (err != nil || n > 1) {
		return nil, backend.ErrExpired
	}
	ch := make(chan backend.SessionEvent)
	context.AfterFunc(ctx, func() { close(ch) })
	return ch, nil
}

func (u *unavailable) Delete(context.Context, string, string, string) error {
	return backend.ErrNotFound
}

func (u *unavailable) Status(context.Context) operator.OperatorState {
	self, _ := hostname()
	return operator.OperatorState{Version: u.version, Leader: self, Self: self, Healthy: false,
		Problems: []string{"no session broker in this build: sessions are refused"}}
}
