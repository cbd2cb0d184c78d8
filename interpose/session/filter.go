package session

import (
	"github.com/remocal/remocal/interpose/internal/seccomp"
	"github.com/remocal/remocal/protocol/config"
)

// filter is the BPF program the session's processes install. accept and
// accept4 are notified only when the session takes incoming traffic: every
// connection a server accepts then costs a round trip to the supervisor,
// which a session without incoming traffic has no reason to pay.
func (s *Session) filter() []byte {
	opts := seccomp.AllOptions
	mode := s.cfg.Network.Incoming.Mode
	opts.Peer = !s.targetless && (mode == config.IncomingMirror || mode == config.IncomingSteal)
	// Sends with an address reach the supervisor only when something
	// may go through the target: DNS (musl's resolver), UDP, or TCP
	// Fast Open (udp.go in package supervisor).
	net := s.cfg.Network
	opts.Datagrams = *net.DNS.Enabled || *net.Outgoing.UDP || *net.Outgoing.TCP
	return seccomp.Encode(seccomp.Filter(opts))
}
