package daemon

// EventKind names what happened in a running session. The supervisor
// reports these kinds, the session host forwards them to the daemon, and the
// daemon turns them into session states and conflicts; this is their one
// declaration.
type EventKind string

// Event kinds.
const (
	// EventSubscribed: the target's port is now mirrored or stolen for
	// the program.
	EventSubscribed EventKind = "subscribed"
	// EventSubscribeFailed: the agent refused a subscription, or it could
	// not be asked.
	EventSubscribeFailed EventKind = "subscribe_failed"
	// EventConflict: a subscription was refused because another client
	// holds the port. The supervisor reports it as EventSubscribeFailed
	// with a holder; the session host tells the daemon it is a conflict.
	EventConflict EventKind = "conflict"
	// EventAgentLost: the connection to the agent ended. Sessions send it
	// (and the next two) for all their supervisors at once.
	EventAgentLost EventKind = "agent_lost"
	// EventAgentReconnected: a lost connection to the same agent (or to
	// the agent of the target's new pod) was made again and incoming
	// traffic asked for again; it ends an EventAgentLost.
	EventAgentReconnected EventKind = "agent_reconnected"
	// EventAgentGone: reconnecting failed for good (the agent's pod was
	// deleted, for example); the session stays degraded.
	EventAgentGone EventKind = "agent_gone"
	// EventTargetMoved: the session followed its target to another pod
	// (or process) than its programs started with; they keep what they
	// took from the old one (Session.Stale says what) until restarted.
	// It follows an EventAgentReconnected.
	EventTargetMoved EventKind = "target_moved"
	// EventWarning: anything else the user should know (a program that
	// could not join, for example).
	EventWarning EventKind = "warning"
)
