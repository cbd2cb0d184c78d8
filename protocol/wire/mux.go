package wire

import (
	"io"
	"time"

	"github.com/hashicorp/yamux"
)

// MuxConfig is the yamux configuration both sides use after the handshake.
//
// The stream window is raised from yamux's 256 KiB default: one window per
// round trip caps a single stream's throughput, and outgoing bulk transfers
// are a stream each. Keepalives detect a dead peer (a vanished port-forward)
// within seconds rather than at the next write.
func MuxConfig() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.MaxStreamWindowSize = 4 << 20
	cfg.KeepAliveInterval = 10 * time.Second
	cfg.StreamCloseTimeout = time.Minute
	cfg.LogOutput = io.Discard
	return cfg
}
