package sessionhost

import (
	"errors"

	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/interpose/session"
	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/wire"
)

// startErrorCode is the daemon's code for a session that could not start.
// Errors carry their category by type, wherever they arise (the
// configuration, the connector of any kind of target, the kernel check),
// so the code never depends on how a message is worded; the rest are the
// agent's: it could not be started or reached.
func startErrorCode(err error) int {
	switch {
	case errors.As(err, new(*config.Error)):
		return daemon.CodeInvalidConfig
	case errors.Is(err, connect.ErrTargetNotFound):
		return daemon.CodeTargetNotFound
	case errors.Is(err, kube.ErrTargetRefused):
		return daemon.CodeTargetRefused
	case errors.Is(err, session.ErrUnsupported):
		return daemon.CodeUnsupported
	case policyOf(err) != nil:
		return daemon.CodePolicy
	}
	return daemon.CodeAgent
}

// policyOf is the operator policy that refused, if one did.
func policyOf(err error) *wire.PolicyViolation {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Policy
	}
	return nil
}
