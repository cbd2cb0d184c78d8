package session

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/wire"
)

// ErrEndedByOperator says the operator ended the session (a user or an
// administrator deleted it, or the operator is stopping).
var ErrEndedByOperator = errors.New("the operator ended the session")

// serverEvent shows what the operator pushes (wire.Event) at once: on
// Stderr, and as data to OnEvent. A port taken by another user's override
// is reported like a conflict (Taken); a session the operator ended ends
// here too.
func serverEvent(opts Options, self *atomic.Pointer[Session], ev wire.Event) {
	msg := ev.Message
	if msg == "" {
		msg = "the operator says: " + ev.Kind
	}
	fmt.Fprintf(opts.Stderr, "remocal: %s\n", msg)
	out := Event{Kind: daemon.EventWarning, Message: msg}
	switch ev.Kind {
	case wire.EventSubscriptionLost:
		out.Kind, out.RemotePort, out.Holder, out.Taken = daemon.EventSubscribeFailed, ev.Port, ev.By, true
		if ev.By != nil {
			out.Mode, out.Filter = ev.By.Mode, ev.By.Filter
		}
	case wire.EventSessionEnded:
		if s := self.Load(); s != nil {
			defer s.abort(fmt.Errorf("%w: %s", ErrEndedByOperator, msg))
		}
	}
	if opts.OnEvent != nil {
		opts.OnEvent(out)
	}
}
