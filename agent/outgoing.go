package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/remocal/remocal/internal/relay"
	"github.com/remocal/remocal/protocol/wire"
)

const (
	dialTimeout = 15 * time.Second
	// udpIdleTimeout ends a UDP flow nobody used for this long, as conntrack
	// would; UDP has no FIN to tell us the client is done.
	udpIdleTimeout = 2 * time.Minute
)

// serveDial connects to the requested address from inside the target's
// network namespace and relays the stream to it.
func (s *session) serveDial(ctx context.Context, stream net.Conn, req *wire.Dial) {
	defer stream.Close()
	dialCtx, cancel := context.WithTimeout(ctx, dialTimeout)
	conn, err := s.agent.proc.NetNS().DialContext(dialCtx, req.Network, req.Address)
	cancel()
	if err != nil {
		s.log.Debug("dial failed", "network", req.Network, "address", req.Address, "err", err)
		wire.WriteEnvelope(stream, wire.ErrorEnvelope(0, dialError(req, err)))
		return
	}
	defer conn.Close()
	res := &wire.DialResult{Local: conn.LocalAddr().String(), Remote: conn.RemoteAddr().String()}
	if err := wire.WriteMessage(stream, 0, res); err != nil {
		return
	}
	s.agent.stats.outgoing.Add(1)
	if req.Network == "udp" {
		relayDatagrams(stream, conn.(*net.UDPConn))
		return
	}
	relay.Conns(stream, conn)
}

// dialError keeps the kernel's errno so the client can fail connect(2) with
// the same error the target would have seen.
func dialError(req *wire.Dial, err error) *wire.Error {
	e := wire.FromErrno(wire.CodeConnection, err, "dial %s %s from the target", req.Network, req.Address)
	e.Code = wire.CodeConnection
	if e.Errno == 0 && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)) {
		e.Errno = int(syscall.ETIMEDOUT)
	}
	return e
}

// relayDatagrams carries datagrams between a stream framed with
// wire.AppendDatagram and a connected UDP socket.
func relayDatagrams(stream net.Conn, udp *net.UDPConn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, wire.MaxDatagramSize)
		out := make([]byte, 0, wire.MaxDatagramSize+2)
		for {
			udp.SetReadDeadline(time.Now().Add(udpIdleTimeout))
			n, err := udp.Read(buf)
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					continue // ICMP port unreachable for an earlier datagram; UDP carries on
				}
				stream.Close()
				return
			}
			out, _ = wire.AppendDatagram(out[:0], buf[:n])
			if _, err := stream.Write(out); err != nil {
				udp.Close()
				return
			}
		}
	}()
	buf := make([]byte, wire.MaxDatagramSize)
	for {
		n, err := wire.ReadDatagram(stream, buf)
		if err != nil {
			break
		}
		if _, err := udp.Write(buf[:n]); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
	}
	udp.Close()
	<-done
}
