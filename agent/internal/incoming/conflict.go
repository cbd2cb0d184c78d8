package incoming

import (
	"fmt"

	"github.com/remocal/remocal/protocol/wire"
)

// conflictWith returns the first existing subscription that a new
// subscription with mode and filter would conflict with, or nil. The rules
// are wire.Conflicts, shared with the operator.
func conflictWith(existing []*subscription, mode wire.Mode, filter *wire.HTTPFilter) *subscription {
	req := wire.Subscribe{Mode: mode, Filter: filter}
	for _, s := range existing {
		held := wire.Subscribe{Mode: s.mode}
		if s.filter != nil {
			spec := s.spec
			held.Filter = &spec
		}
		if wire.Conflicts(held, req) {
			return s
		}
	}
	return nil
}

// conflictError explains a refused subscription, naming the holder and what
// the user can do about it.
func conflictError(port uint16, holder *subscription, filter *wire.HTTPFilter) *wire.Error {
	held := "without a filter"
	if holder.filter != nil {
		held = "with filter " + holder.spec.String()
	}
	var hint string
	switch {
	case holder.filter == nil:
		hint = "ask them to stop, use mirror mode, or wait for their session to end"
	case filter == nil:
		hint = "steal with an HTTP filter that does not overlap theirs (for example a header only your requests carry), or use mirror mode"
	default:
		hint = "use a filter with a different header value, or use mirror mode"
	}
	return &wire.Error{
		Code: wire.CodeConflict,
		Message: fmt.Sprintf("port %d is already stolen %s by %s (subscription %s); %s",
			port, held, holder.client.Name(), holder.id, hint),
		Holder: holder.holder(),
	}
}
