// Package daemon is the contract between the remocal daemon and its clients
// (the VS Code and JetBrains extensions, `remocal rpc`, scripts): JSON-RPC 2.0
// with LSP framing (Content-Length headers), LSP lifecycle (initialize,
// initialized, shutdown, exit, $/cancelRequest, $/progress,
// window/showMessage, window/logMessage) and the remocal/* methods and
// notifications defined here.
//
// Payloads are encoded with the JSON codec of go.lsp.dev/jsonrpc2
// (encoding/json v2 semantics): field names are matched exactly, unknown
// fields are ignored, and empty lists are written as [] rather than null.
// Golden vectors for every message are in protocol/testdata/daemon.
package daemon

import (
	"time"

	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/protocol/wire"
)

// ServerName is what the daemon reports in initialize.
const ServerName = "remocal"

// ProtocolVersion is the version of this contract, "MAJOR.MINOR". A client
// that needs MAJOR.N works with any daemon of the same major whose minor is
// at least N; the daemon reports it in initialize
// (capabilities.experimental.remocal.protocolVersion) and in
// remocal/daemon/info.
//
// 1.0: the methods and notifications up to the operator's sessions.
// 1.1: session labels, configuration overrides in remocal/session/start,
// remocal/session/kill, the protocol version itself.
// 1.2: policy errors; 1.3: stale targets.
// 1.4: queueSplits in sessions and remote sessions.
const ProtocolVersion = "1.4"

// InitializeExperimental is what the daemon puts under
// capabilities.experimental of its initialize result.
type InitializeExperimental struct {
	Remocal ExperimentalRemocal `json:"remocal"`
}

// ExperimentalRemocal names the contract the daemon speaks.
type ExperimentalRemocal struct {
	ProtocolVersion string `json:"protocolVersion"`
}

// Requests (client → daemon).
const (
	MethodDaemonInfo     = "remocal/daemon/info"
	MethodDaemonShutdown = "remocal/daemon/shutdown"
	MethodNamespaces     = "remocal/namespaces"
	MethodTargets        = "remocal/targets"
	MethodConfigResolve  = "remocal/config/resolve"
	MethodConfigVerify   = "remocal/config/verify"
	MethodSessionStart   = "remocal/session/start"
	MethodSessionStop    = "remocal/session/stop"
	MethodSessionList    = "remocal/session/list"
	MethodSessionDetail  = "remocal/session/detail"
	// MethodSessionKill ends an operator session, anybody's, as the
	// cluster's RBAC allows (1.1).
	MethodSessionKill = "remocal/session/kill"
)

// Notifications (daemon → every initialized client).
const (
	NotifySessionChanged = "remocal/sessionChanged"
	NotifyConflict       = "remocal/conflict"
	NotifyTargetsChanged = "remocal/targetsChanged"
	NotifyConfigChanged  = "remocal/configChanged"
)

// DaemonInfo describes the running daemon. A forwarder compares Version
// with its own before relaying, to restart an older daemon that has no
// sessions.
type DaemonInfo struct {
	Version string `json:"version"`
	// ProtocolVersion is ProtocolVersion of the daemon's build (1.1).
	ProtocolVersion string `json:"protocolVersion"`
	PID             int    `json:"pid"`
	Socket          string `json:"socket"`
	Sessions        int    `json:"sessions"`
	Clients         int    `json:"clients"`
	// StartedAt is when the daemon started (RFC 3339).
	StartedAt time.Time `json:"startedAt"`
}

// DaemonShutdownParams asks the daemon to exit. It refuses while sessions
// run unless Force is set.
type DaemonShutdownParams struct {
	Force bool `json:"force,omitzero"`
}

// Namespace groups targets: a Kubernetes namespace, or "local" for this
// machine's processes.
type Namespace struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
}

// NamespacesResult lists namespaces of every provider.
type NamespacesResult struct {
	Namespaces []Namespace `json:"namespaces"`
}

// TargetsParams filters a target listing.
type TargetsParams struct {
	// Kinds, if set, keeps only these kinds ("pid", "deployment", ...).
	Kinds []string `json:"kinds,omitzero"`
	// Namespace, if set, keeps only this namespace.
	Namespace string `json:"namespace,omitzero"`
}

// Target is something a session can run in.
type Target struct {
	// Ref is what --target and remocal/session/start take: "pid/4242",
	// "deployment/api" ...
	Ref       string `json:"ref"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Provider  string `json:"provider"`
	// Ready says whether a session can start on it now.
	Ready bool `json:"ready"`
	// Status is readiness for humans: "2/3 ready", "Running",
	// "CrashLoopBackOff", "complete", "suspended" ...
	Status string `json:"status,omitzero"`
	// Containers are the application containers a session can pick with
	// "/container/NAME" (known sidecars left out); the first is the one
	// used when the target names none.
	Containers []string `json:"containers,omitzero"`
	// Description is for humans: a command line, an image.
	Description string `json:"description,omitzero"`
}

// TargetsResult lists targets, sorted by namespace then ref.
type TargetsResult struct {
	Targets []Target `json:"targets"`
}

// ConfigParams names a configuration: an explicit File, or the nearest
// .remocal/config.json above WorkspaceFolder (an absolute path).
type ConfigParams struct {
	WorkspaceFolder string `json:"workspaceFolder,omitzero"`
	File            string `json:"file,omitzero"`
}

// Problem is one thing wrong in a configuration file.
type Problem struct {
	// Path is a JSON path such as "$.network.incoming.mode".
	Path    string `json:"path"`
	Line    int    `json:"line,omitzero"`
	Column  int    `json:"column,omitzero"`
	Message string `json:"message"`
}

// ConfigResult is a resolved and verified configuration. Config holds the
// configuration with every default filled in (see protocol/config);
// it is absent when the file has problems.
type ConfigResult struct {
	// File is the configuration file used; empty when none was found and
	// the defaults apply.
	File     string    `json:"file"`
	Valid    bool      `json:"valid"`
	Problems []Problem `json:"problems"`
	Config   any       `json:"config,omitzero"`
}

// Launch says how the program of a session is started.
type Launch string

const (
	// LaunchAuto uses Wrapper for statically linked programs and Env
	// otherwise.
	LaunchAuto Launch = "auto"
	// LaunchEnv: start the program yourself with Env added; the bootstrap
	// library in LD_PRELOAD joins it to the session.
	LaunchEnv Launch = "env"
	// LaunchWrapper: start Wrapper followed by the program's argv.
	LaunchWrapper Launch = "wrapper"
)

// Program describes what the client is about to launch.
type Program struct {
	Path string   `json:"path"`
	Args []string `json:"args,omitzero"`
	// Launch defaults to auto.
	Launch Launch `json:"launch,omitzero"`
	// TransparentFirst: the program is a debugger that starts the real
	// program; intercept its descendants, not the debugger itself.
	TransparentFirst bool `json:"transparentFirst,omitzero"`
}

// SessionStartParams starts a session. Target and WorkspaceFolder are
// required; settings come from the workspace's configuration, with Incoming
// overriding network.incoming.mode when set.
type SessionStartParams struct {
	Target          string `json:"target"`
	WorkspaceFolder string `json:"workspaceFolder"`
	// Namespace is the Kubernetes namespace of the target, overriding the
	// configuration's kubernetes.namespace; empty: the configuration's,
	// else the kubeconfig context's.
	Namespace  string              `json:"namespace,omitzero"`
	ConfigFile string              `json:"configFile,omitzero"`
	Incoming   config.IncomingMode `json:"incoming,omitzero"`
	Program    *Program            `json:"program,omitzero"`
	// Label says what the session is for, shown in clients' views:
	// "debug: Launch API", "terminal" (1.1).
	Label string `json:"label,omitzero"`
	// Overrides is a partial configuration, shaped like
	// .remocal/config.json, merged over the workspace's: objects key by
	// key, any other value replaced. It is validated like the file (1.1).
	Overrides map[string]any `json:"overrides,omitzero"`
	// WorkDoneToken, if set, receives $/progress while the session starts.
	WorkDoneToken any `json:"workDoneToken,omitzero"`
}

// SessionState is a session's lifecycle stage.
type SessionState string

const (
	StateStarting SessionState = "starting"
	StateActive   SessionState = "active"
	// StateDegraded: running, but something failed (the agent connection
	// dropped, a port could not be taken); Reason says what.
	StateDegraded SessionState = "degraded"
	StateEnded    SessionState = "ended"
)

// Session is a session as every client sees it.
type Session struct {
	ID     string `json:"id"`
	Target string `json:"target"`
	// Namespace is the Kubernetes namespace of a Kubernetes target; empty
	// for local targets, and when the kubeconfig context's applies.
	Namespace       string `json:"namespace,omitzero"`
	WorkspaceFolder string `json:"workspaceFolder"`
	// Owner is who started it ("alice@laptop via vscode").
	Owner string `json:"owner"`
	// Label is the start request's label (1.1).
	Label     string       `json:"label,omitzero"`
	State     SessionState `json:"state"`
	Reason    string       `json:"reason,omitzero"`
	StartedAt time.Time    `json:"startedAt"`
	// Incoming is the effective incoming mode: mirror, steal or off.
	Incoming config.IncomingMode `json:"incoming"`
	// Resolved is what the target came to once the session started: for a
	// Kubernetes target the pod and container it runs in
	// ("deployment/api (pod shop/api-7d9c-x2x, container app)").
	Resolved string `json:"resolved,omitzero"`
	// Note explains a choice made for the user, such as which of several
	// replicas the session uses and what that means for their traffic.
	Note string `json:"note,omitzero"`
	// Policy is the operator policy and rule that refused one of the
	// session's ports, while the session is degraded by it (1.2).
	Policy *wire.PolicyViolation `json:"policy,omitzero"`
	// Stale is set once the session has followed its target to another
	// pod than its programs started with: what they keep from the old
	// pod, and the action that refreshes it. A client shows Message with
	// a button for Action.
	Stale *StaleTarget `json:"stale,omitzero"`
	// QueueSplits are the queues the session takes a share of, in the
	// configuration's order, once the operator granted them (1.4,
	// docs/queues.md).
	QueueSplits []QueueSplit `json:"queueSplits,omitzero"`
}

// QueueSplit is a queue one of this daemon's sessions takes a share of:
// the configuration's split as the operator granted it (1.4).
type QueueSplit struct {
	// Consumer is the RemocalQueueConsumer, Queue its queue.
	Consumer string `json:"consumer"`
	Queue    string `json:"queue"`
	// Mode is steal or mirror; Filter selects the messages (none: all).
	Mode   queuesplit.Mode    `json:"mode"`
	Filter *queuesplit.Filter `json:"filter,omitzero"`
	// Env is what programs of the session get instead of the workload's
	// queue variables: the values naming the session's own queue.
	Env map[string]string `json:"env"`
}

// StaleTarget says what running programs keep from the pod a session left.
type StaleTarget struct {
	// From is Session.Resolved when the programs started.
	From string `json:"from"`
	// Kept lists what the programs keep from there: KeptEnv, KeptHostname.
	Kept []string `json:"kept"`
	// Action is what refreshes it: ActionRestart.
	Action  string `json:"action"`
	Message string `json:"message"`
}

// What programs keep from the pod they started with, and the action that
// refreshes it.
const (
	// KeptEnv: the target's environment variables, read once at start.
	KeptEnv = "env"
	// KeptHostname: the hostname uname reports, the old pod's name.
	KeptHostname = "hostname"
	// ActionRestart: restart the program in a new session (an IDE
	// restarts its debug session; a terminal runs remocal exec again).
	ActionRestart = "restart"
)

// SessionStartResult tells the client how to launch its program in the
// session.
type SessionStartResult struct {
	Session Session `json:"session"`
	// Env holds the variables to add to the program's environment: the
	// target's, LD_PRELOAD with the bootstrap library and the session
	// socket. Variables the client sets itself may be kept, except these.
	Env map[string]string `json:"env"`
	// Wrapper, when set, is the argv to run instead of the program's: the
	// program's own path and arguments are already at its end.
	Wrapper  []string `json:"wrapper,omitzero"`
	Warnings []string `json:"warnings"`
}

// SessionParams names a session.
type SessionParams struct {
	ID string `json:"id"`
}

// RemoteSessionParams names an operator session (1.1).
type RemoteSessionParams struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// SessionListResult lists every session of the daemon.
type SessionListResult struct {
	Sessions []Session `json:"sessions"`
	// Remote lists the operator's sessions on targets in view, when the
	// cluster has an operator.
	Remote []RemoteSession `json:"remote,omitzero"`
}

// Subscription is incoming traffic a session receives.
type Subscription struct {
	// Port is the target's port; LocalPort is where the program listens.
	Port       uint16           `json:"port"`
	LocalPort  uint16           `json:"localPort"`
	Mode       wire.Mode        `json:"mode"`
	Filter     *wire.HTTPFilter `json:"filter,omitzero"`
	Deliveries uint64           `json:"deliveries"`
}

// Process is a program running in a session.
type Process struct {
	PID int    `json:"pid"`
	Exe string `json:"exe"`
}

// SessionDetail is everything the daemon knows about a session.
type SessionDetail struct {
	Session       Session        `json:"session"`
	Subscriptions []Subscription `json:"subscriptions"`
	Processes     []Process      `json:"processes"`
	// Counters count intercepted system calls: "notified", "continued",
	// and per remote operation ("open", "stat", "connect", ...).
	Counters map[string]uint64 `json:"counters"`
	Errors   []string          `json:"errors"`
}

// SessionChanged announces a session's new state: one of this daemon's
// (Session), or a session of the cluster's operator on a target in view,
// anybody's (Remote; Session is then absent).
type SessionChanged struct {
	Session Session        `json:"session,omitzero"`
	Remote  *RemoteSession `json:"remote,omitzero"`
}

// Phases of a RemoteSession: the operator's (Active, Disconnected) and
// RemoteEnded, sent once when the session is gone.
const (
	RemoteActive       = "Active"
	RemoteDisconnected = "Disconnected"
	RemoteEnded        = "Ended"
)

// RemoteSession is a session of the cluster's operator, as a client shows
// it: "port 8080 on deploy/api is stolen by bob with header x-user: bob
// since 10:02".
type RemoteSession struct {
	// Name is the operator's session name, in Namespace.
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// User is its owner as Kubernetes authenticated them; Client what
	// their client calls itself ("bob@desk"), Tool which program
	// ("remocal exec", "vscode").
	User   string `json:"user"`
	Client string `json:"client"`
	Tool   string `json:"tool,omitzero"`
	// Target is the target as remocal spells it ("deployment/api").
	Target string `json:"target"`
	// Phase is RemoteActive, RemoteDisconnected (its locks are kept until
	// ExpiresAt for it to resume) or RemoteEnded.
	Phase     string       `json:"phase"`
	Ports     []RemotePort `json:"ports"`
	Since     time.Time    `json:"since"`
	ExpiresAt *time.Time   `json:"expiresAt,omitzero"`
	// QueueSplits are the queues it takes a share of (1.4).
	QueueSplits []RemoteQueueSplit `json:"queueSplits,omitzero"`
}

// RemoteQueueSplit is a queue an operator session takes a share of, as
// the session's status records it (1.4).
type RemoteQueueSplit struct {
	Consumer string             `json:"consumer"`
	Queue    string             `json:"queue"`
	Mode     queuesplit.Mode    `json:"mode"`
	Filter   *queuesplit.Filter `json:"filter,omitzero"`
	Since    time.Time          `json:"since"`
	// Delivered counts the messages routed to the session's queue since
	// the operator's current router started (a new leader counts anew).
	Delivered uint64 `json:"delivered"`
}

// RemotePort is one port a remote session receives; Lock says it holds
// the port (a steal), since Since.
type RemotePort struct {
	Port   uint16           `json:"port"`
	Mode   wire.Mode        `json:"mode"`
	Filter *wire.HTTPFilter `json:"filter,omitzero"`
	Lock   bool             `json:"lock,omitzero"`
	Since  *time.Time       `json:"since,omitzero"`
}

// Conflict announces that a session could not take a port because another
// client holds it.
//
// Conflicts seen on the cluster rather than in this daemon's sessions (the
// operator's sessions watched) have no SessionID: RemoteSession names the
// operator session ("namespace/name") that lost the port, and Taken says
// it was taken from it by Holder (an override) rather than refused.
type Conflict struct {
	SessionID     string       `json:"sessionId"`
	Target        string       `json:"target"`
	Port          uint16       `json:"port"`
	Mode          wire.Mode    `json:"mode"`
	Holder        *wire.Holder `json:"holder"`
	Message       string       `json:"message"`
	RemoteSession string       `json:"remoteSession,omitzero"`
	Taken         bool         `json:"taken,omitzero"`
}

// TargetsChanged tells clients to list targets again.
type TargetsChanged struct {
	Provider  string `json:"provider"`
	Namespace string `json:"namespace,omitzero"`
}

// ConfigChanged announces that a watched configuration file changed, with
// the result of verifying it again.
type ConfigChanged struct {
	WorkspaceFolder string    `json:"workspaceFolder"`
	File            string    `json:"file"`
	Valid           bool      `json:"valid"`
	Problems        []Problem `json:"problems"`
}
