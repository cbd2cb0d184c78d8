// Package sessionhost runs one remocal session in a process of its own, so
// that a crash in one session takes down neither the daemon nor the other
// sessions.
//
// The daemon calls Start, which runs `remocal __remocal-session-host` (Main
// here). The host owns an interpose/session.Session: the agent connection,
// the supervisors, their keepers and the socket programs join the session
// through (the LD_PRELOAD bootstrap library, or `remocal exec --join`).
//
// Daemon and host talk JSON-RPC 2.0 (go.lsp.dev/jsonrpc2, Content-Length
// framing) over a socketpair the host inherits as descriptor 3:
//
//	daemon → host  sessionhost/start   notification, first: the Spec
//	host → daemon  sessionhost/ready   notification: Ready, or why it failed
//	host → daemon  sessionhost/event   notification: an Event, after ready
//	daemon → host  sessionhost/detail  call: Detail
//	daemon → host  sessionhost/stop    call: close the session, answer, exit
//
// The host exits once it has closed the session: after stop, when the
// daemon's end of the socketpair closes (the daemon died), or on SIGTERM
// (also its parent-death signal). Its standard error (descriptor 2) carries
// its own messages, whose last lines explain an unexpected exit; what it
// leaves behind (keepers, which may outlive it) writes to descriptor 4.
package sessionhost

import (
	"encoding/json"

	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/wire"
)

// Arg selects session host mode in os.Args[1].
const Arg = "__remocal-session-host"

// Spec is the session to run.
type Spec struct {
	ID string
	// Target overrides Config.Target when set.
	Target string
	// WorkDir is the project: it stays local.
	WorkDir string
	// ClientName tells other users who holds a port ("alice@laptop via vscode").
	ClientName string
	// Socket is where the host serves the socket programs join through; the
	// daemon picks it in a private (0700) directory. It is removed when the
	// host exits.
	Socket string
	// Config is the resolved configuration; the host applies its defaults.
	Config *config.Config
	// Incoming, if set ("mirror", "steal", "off"), overrides
	// Config.Network.Incoming.Mode.
	Incoming config.IncomingMode
	// TransparentFirst: the first program that joins (a debugger) is not
	// intercepted itself; its descendants are.
	TransparentFirst bool
	Version          string
	// LibraryDir is where the bootstrap library is written; default
	// bootstrap.DefaultDir(). It must be private to the user.
	LibraryDir string
	// Log, if set, receives every line the host, and what it leaves
	// behind, write to standard error. It is called from goroutines of its
	// own and must not block for long.
	Log func(line string)
}

// Ready is what a started session offers programs.
type Ready struct {
	// Env is what a program adds to its environment to join the session:
	// the target's variables (session.Session.RemoteEnv), LD_PRELOAD with
	// the bootstrap library and REMOCAL_SESSION_SOCKET.
	Env map[string]string `json:"env"`
	// Warnings are what went wrong while starting without stopping it.
	Warnings []string `json:"warnings"`
	// Incoming is the effective incoming mode: mirror, steal or off.
	Incoming config.IncomingMode `json:"incoming"`
	// Resolved and Note are daemon.Session's.
	Resolved string `json:"resolved,omitzero"`
	Note     string `json:"note,omitzero"`
	// QueueSplits are daemon.Session's: the queues the operator split
	// for the session as it started.
	QueueSplits []daemon.QueueSplit `json:"queueSplits,omitzero"`
}

// Event is something that happened in a running session.
type Event struct {
	Kind    daemon.EventKind `json:"kind"`
	Message string           `json:"message"`
	// Conflict is set for EventConflict: a port another client holds.
	Conflict *daemon.Conflict `json:"conflict,omitzero"`
	// Resolved is set for EventAgentReconnected: what the target resolves
	// to now (a new pod after the old one went away).
	Resolved string `json:"resolved,omitzero"`
	// Policy is set for EventSubscribeFailed when an operator policy
	// refused the port.
	Policy *wire.PolicyViolation `json:"policy,omitzero"`
	// Stale is set for EventTargetMoved.
	Stale *daemon.StaleTarget `json:"stale,omitzero"`
}

// Detail is what the session is doing.
type Detail struct {
	Subscriptions []daemon.Subscription `json:"subscriptions"`
	// Processes are the running processes the session's supervisors have
	// seen (joined programs and their descendants).
	Processes []daemon.Process `json:"processes"`
	// Counters count intercepted system calls: "notified", "continued",
	// and per remote operation ("open", "stat", "connect", "listen", ...).
	Counters map[string]uint64 `json:"counters"`
	// Errors are the session's problems so far, oldest first (refused
	// subscriptions, a lost agent, programs that could not join).
	Errors []string `json:"errors"`
	// Supervised counts the programs that joined.
	Supervised int `json:"supervised"`
}

// Methods of the control connection.
const (
	methodStart  = "sessionhost/start"
	methodReady  = "sessionhost/ready"
	methodEvent  = "sessionhost/event"
	methodDetail = "sessionhost/detail"
	methodStop   = "sessionhost/stop"
)

// startParams is Spec on the wire. The configuration travels as
// encoding/json writes it (the format of config files).
type startParams struct {
	ID               string              `json:"id"`
	Target           string              `json:"target"`
	WorkDir          string              `json:"workDir"`
	ClientName       string              `json:"clientName"`
	Socket           string              `json:"socket"`
	Config           json.RawMessage     `json:"config"`
	Incoming         config.IncomingMode `json:"incoming"`
	TransparentFirst bool                `json:"transparentFirst"`
	Version          string              `json:"version"`
	LibraryDir       string              `json:"libraryDir"`
}

// readyParams carries Ready, or Error when the session could not start.
type readyParams struct {
	Ready *Ready     `json:"ready,omitzero"`
	Error *hostError `json:"error,omitzero"`
}

// hostError is a start failure with a protocol/daemon error code.
type hostError struct {
	Code    int                   `json:"code"`
	Message string                `json:"message"`
	Policy  *wire.PolicyViolation `json:"policy,omitzero"`
}

// Descriptors the host inherits.
const (
	controlFD = 3
	logFD     = 4
)
