// Package operator is the contract of remocal's operator API: an aggregated
// Kubernetes API (group operator.remocal.dev, version v1alpha1) served by
// remocal-operator and reached through the cluster's own kube-apiserver,
// so that Kubernetes authenticates the caller, RBAC authorizes every call
// and the cluster's audit log records it.
//
// Resources:
//   - targets (namespaced; list, get): what a session can attach to; the
//     subresource targets/portforward upgrades to the agent wire protocol
//     (protocol/wire) spoken by the operator as a broker;
//   - sessions (namespaced; list, watch, get, delete, deletecollection):
//     live sessions, their owners, locks and counters;
//   - operatorstatuses (cluster-scoped, one object named "operator"): the
//     operator's own state.
//
// Golden vectors for every type are in protocol/testdata/operator.
package operator

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/protocol/wire"
)

// Group and Version of the API.
const (
	Group   = "operator.remocal.dev"
	Version = "v1alpha1"
	// APIServiceName is the APIService object that registers the API
	// with the kube-apiserver.
	APIServiceName = Version + "." + Group
)

// SchemeGroupVersion is Group and Version together.
var SchemeGroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// Resources, subresources and the verbs RBAC grants on them.
const (
	ResourceTargets  = "targets"
	ResourceSessions = "sessions"
	ResourceStatuses = "operatorstatuses"

	// SubresourcePortForward upgrades to a session (create
	// targets/portforward). It is named like pods/portforward on purpose:
	// the kube-apiserver treats the subresources attach, exec, log, proxy
	// and portforward as long-running (no request timeout, no
	// priority-and-fairness seat held for the connection's life); a
	// subresource named anything else would be cut after the request
	// timeout and hold a seat for as long as the session lives.
	SubresourcePortForward = "portforward"

	// VerbOverride on targets lets a user take a port that another
	// session holds (onConflict: override).
	VerbOverride = "override"
	// VerbKill on sessions lets a user delete other users' sessions; a
	// user may always delete their own with the delete verb.
	VerbKill = "kill"

	// StatusName is the name of the one operatorstatuses object.
	StatusName = "operator"

	// UpgradeProtocol is the Upgrade header of a portforward request;
	// after the 101 response the connection carries protocol/wire.
	UpgradeProtocol = "remocal-wire"
)

// Target is something a session can attach to: a workload or a pod. Its
// name is "<kind>.<name>", for example "deployment.api" or
// "pod.api-7d9f6-x2x4q" (Kubernetes names cannot contain "/").
type Target struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TargetSpec   `json:"spec"`
	Status            TargetStatus `json:"status"`
}

// TargetSpec says what the target is.
type TargetSpec struct {
	// Kind is the target kind as remocal spells it: pod, deployment,
	// statefulset, replicaset, job, cronjob, service.
	Kind string `json:"kind"`
	// Name is the workload's name.
	Name string `json:"name"`
	// Containers are the application containers (known sidecars left
	// out); the first is used when a session names none.
	Containers []string `json:"containers,omitempty"`
}

// TargetStatus is the target's state now.
type TargetStatus struct {
	Ready bool `json:"ready"`
	// Status is readiness for humans: "2/3 ready", "Running" ...
	Status string `json:"status,omitempty"`
	// Pods are the target's ready pods: a session receives traffic from
	// every one of them.
	Pods []string `json:"pods,omitempty"`
	// Sessions counts the live sessions on the target.
	Sessions int `json:"sessions"`
	// Policies are the policies (protocol/policy) that apply to sessions
	// on the target, with what each allows; filled when one target is
	// read (get), not in lists.
	Policies []AppliedPolicy `json:"policies,omitempty"`
}

// AppliedPolicy is a policy that applies to a target.
type AppliedPolicy struct {
	// Kind is RemocalPolicy or RemocalClusterPolicy.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Rules say what it allows and forbids, one per line, for humans
	// ({{user}} stands for the session's user).
	Rules []string `json:"rules"`
}

// TargetList is a list of targets.
type TargetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Target `json:"items"`
}

// TargetName is the object name of a target of kind and name.
func TargetName(kind, name string) string { return kind + "." + name }

// Session is one client's session on a target. Its name is chosen by the
// operator ("s-" and 10 random lowercase letters and digits); a client that
// reconnects within the lease TTL names it again to resume.
type Session struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              SessionSpec   `json:"spec"`
	Status            SessionStatus `json:"status"`
}

// SessionSpec is who opened the session, from where, on what.
type SessionSpec struct {
	// User is the caller as Kubernetes authenticated them.
	User UserInfo `json:"user"`
	// Client is what the client said about itself.
	Client ClientInfo `json:"client"`
	// Target is the target's object name ("deployment.api").
	Target string `json:"target"`
	// Container is the application container the session uses.
	Container string `json:"container,omitempty"`
}

// UserInfo is an authenticated identity.
type UserInfo struct {
	Username string   `json:"username"`
	UID      string   `json:"uid,omitempty"`
	Groups   []string `json:"groups,omitempty"`
}

// ClientInfo is the client's own description, for humans.
type ClientInfo struct {
	// Name is the client's name in conflicts ("alice@laptop").
	Name string `json:"name"`
	// Host is the client machine's host name.
	Host string `json:"host,omitempty"`
	// Tool is "remocal exec", "vscode", "jetbrains" ...
	Tool    string `json:"tool,omitempty"`
	Version string `json:"version,omitempty"`
}

// Session phases.
const (
	// PhaseActive: the client is connected.
	PhaseActive = "Active"
	// PhaseDisconnected: the client's connection dropped; its locks are
	// kept until Status.ExpiresAt for it to resume, while the traffic
	// goes to the deployed application.
	PhaseDisconnected = "Disconnected"
)

// SessionStatus is the session's state now.
type SessionStatus struct {
	Phase string `json:"phase"`
	// Pods are the target's pods the session receives traffic from.
	Pods []string `json:"pods,omitempty"`
	// Primary is the pod whose environment, files and network the
	// session uses, and PrimaryReason why that one.
	Primary       string `json:"primary,omitempty"`
	PrimaryReason string `json:"primaryReason,omitempty"`
	// Ports are the session's incoming subscriptions.
	Ports []PortStatus `json:"ports,omitempty"`
	// QueueSplits are the queues the session takes a share of
	// (docs/queues.md).
	QueueSplits []QueueSplitStatus `json:"queueSplits,omitempty"`
	// StartTime is when the session began, LastHeartbeat when the
	// client was last heard from; ExpiresAt, when disconnected, is when
	// the session ends unless the client resumes it.
	StartTime     metav1.Time  `json:"startTime"`
	LastHeartbeat metav1.Time  `json:"lastHeartbeat"`
	ExpiresAt     *metav1.Time `json:"expiresAt,omitempty"`
	Counters      Counters     `json:"counters"`
}

// PortStatus is one incoming subscription of a session.
type PortStatus struct {
	Port   uint16           `json:"port"`
	Mode   wire.Mode        `json:"mode"`
	Filter *wire.HTTPFilter `json:"filter,omitempty"`
	// Lock is set for a steal: the session holds the port (with Filter)
	// on every pod of the target. Since is when it took it.
	Lock  bool         `json:"lock,omitempty"`
	Since *metav1.Time `json:"since,omitempty"`
}

// QueueSplitStatus is one queue split of a session.
type QueueSplitStatus struct {
	// Consumer is the RemocalQueueConsumer, Queue its queue.
	Consumer string             `json:"consumer"`
	Queue    string             `json:"queue"`
	Mode     queuesplit.Mode    `json:"mode"`
	Filter   *queuesplit.Filter `json:"filter,omitempty"`
	Since    metav1.Time        `json:"since"`
	// Delivered counts the messages routed to the session's queue by
	// the router that runs now (it starts again with a new leader).
	Delivered uint64 `json:"delivered"`
}

// Counters count the session's traffic through the operator.
type Counters struct {
	// Connections and Requests delivered to the client (incoming).
	IncomingConnections uint64 `json:"incomingConnections"`
	IncomingRequests    uint64 `json:"incomingRequests"`
	// Dials made for the client (outgoing).
	OutgoingConnections uint64 `json:"outgoingConnections"`
	// BytesIn is bytes sent to the client, BytesOut bytes from it.
	BytesIn  uint64 `json:"bytesIn"`
	BytesOut uint64 `json:"bytesOut"`
}

// SessionList is a list of sessions.
type SessionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Session `json:"items"`
}

// OperatorStatus is the operator's own state.
type OperatorStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Status            OperatorState `json:"status"`
}

// OperatorState is what `remocal operator status` shows.
type OperatorState struct {
	Version string `json:"version"`
	// Leader is the pod that holds the leader Lease and serves sessions;
	// Self the pod that answered.
	Leader string `json:"leader"`
	Self   string `json:"self"`
	// Agents are the agents the operator keeps, Sessions the live
	// sessions (any phase).
	Agents   []AgentStatus `json:"agents,omitempty"`
	Sessions int           `json:"sessions"`
	// Healthy with Problems empty; otherwise Problems say what is wrong.
	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems,omitempty"`
	// Targets counts the live sessions per target.
	Targets []TargetSessions `json:"targets,omitempty"`
	// RecentDenials are the latest policy denials, newest first.
	RecentDenials []Denial `json:"recentDenials,omitempty"`
	// Usage is who used which target for how long, per UTC day, for the
	// last 31 days, ended and live sessions together. The operator keeps
	// it in the ConfigMap remocal-operator-usage of its namespace, so it
	// outlives leaders and restarts (a failover may lose the last 15 s).
	Usage []Usage `json:"usage,omitempty"`
	// QueueSplits are the queues split now, as the leader routes them.
	QueueSplits []QueueState `json:"queueSplits,omitempty"`
}

// QueueState is one split queue as the operator routes it.
type QueueState struct {
	Namespace string `json:"namespace"`
	Consumer  string `json:"consumer"`
	Queue     string `json:"queue"`
	// Phase is queuesplit.PhaseSplitting or PhaseRestoring; Message says
	// what went wrong, if anything (also listed in Problems).
	Phase   string `json:"phase"`
	Message string `json:"message,omitempty"`
	// Routed counts the messages of the original queue the router
	// delivered, Deployed those that went to the deployed consumer and
	// Oversized those whose body was too large for body filters.
	Routed    uint64 `json:"routed"`
	Deployed  uint64 `json:"deployed"`
	Oversized uint64 `json:"oversized,omitempty"`
	// Sessions split the queue, in the order they asked (the oldest
	// matching steal takes a message).
	Sessions []QueueSessionState `json:"sessions,omitempty"`
}

// QueueSessionState is one session's share of a split queue.
type QueueSessionState struct {
	Session   string             `json:"session"`
	User      string             `json:"user"`
	Mode      queuesplit.Mode    `json:"mode"`
	Filter    *queuesplit.Filter `json:"filter,omitempty"`
	Delivered uint64             `json:"delivered"`
}

// TargetSessions is the live sessions on one target.
type TargetSessions struct {
	Namespace string `json:"namespace"`
	// Target as users write it: "deployment/api".
	Target   string   `json:"target"`
	Sessions int      `json:"sessions"`
	Users    []string `json:"users"`
}

// Denial is one request a policy refused (or took away).
type Denial struct {
	Time      metav1.Time `json:"time"`
	User      string      `json:"user"`
	Namespace string      `json:"namespace"`
	Target    string      `json:"target"`
	What      string      `json:"what"`
	// Policy is "RemocalPolicy shop/no-steal" or "RemocalClusterPolicy x".
	Policy  string `json:"policy"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// Usage is one user's use of one target on one day.
type Usage struct {
	// Day is the UTC date, "2026-12-07".
	Day       string `json:"day"`
	Namespace string `json:"namespace"`
	Target    string `json:"target"`
	User      string `json:"user"`
	// Sessions started that day; Seconds of session time that day.
	Sessions int     `json:"sessions"`
	Seconds  float64 `json:"seconds"`
}

// AgentStatus is one agent the operator runs.
type AgentStatus struct {
	// Pod is the target pod ("namespace/name") the agent serves; Agent
	// is the agent's own pod.
	Pod      string `json:"pod"`
	Agent    string `json:"agent"`
	Sessions int    `json:"sessions"`
	// IdleSince is when its last session ended, if none is left.
	IdleSince *metav1.Time `json:"idleSince,omitempty"`
}

// OperatorStatusList is a list of operator statuses (it holds one).
type OperatorStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OperatorStatus `json:"items"`
}
