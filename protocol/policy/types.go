// Package policy is the contract of remocal's policies: custom resources
// (group policy.remocal.dev, version v1alpha1) a platform team writes to
// decide what developers may do on which targets, enforced by the operator
// in the cluster, never only by the client.
//
//   - RemocalPolicy (namespaced) applies to targets in its namespace;
//   - RemocalClusterPolicy (cluster-scoped) applies to targets in every
//     namespace, or in those its targets.namespaces patterns name.
//
// Every policy that selects a target applies; their rules add up (a rule
// any of them sets holds). The evaluation (Set) is here so that the
// operator, which enforces it, and the CLI, which explains it, agree.
//
// Golden vectors for every type are in protocol/testdata/policy.
package policy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and Version of the policies.
const (
	Group   = "policy.remocal.dev"
	Version = "v1alpha1"

	KindPolicy        = "RemocalPolicy"
	KindClusterPolicy = "RemocalClusterPolicy"

	ResourcePolicies        = "remocalpolicies"
	ResourceClusterPolicies = "remocalclusterpolicies"
)

// SchemeGroupVersion is Group and Version together.
var SchemeGroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// RemocalPolicy restricts sessions on the targets of its namespace it
// selects.
type RemocalPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              Spec `json:"spec"`
}

// RemocalPolicyList is a list of RemocalPolicy.
type RemocalPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RemocalPolicy `json:"items"`
}

// RemocalClusterPolicy restricts sessions on the targets it selects in
// every namespace (or those Targets.Namespaces names).
type RemocalClusterPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              Spec `json:"spec"`
}

// RemocalClusterPolicyList is a list of RemocalClusterPolicy.
type RemocalClusterPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RemocalClusterPolicy `json:"items"`
}

// Spec is a policy: which targets, and the rules for sessions on them.
type Spec struct {
	Targets  Targets   `json:"targets,omitempty"`
	Incoming *Incoming `json:"incoming,omitempty"`
	Outgoing *Outgoing `json:"outgoing,omitempty"`
	Env      *Env      `json:"env,omitempty"`
	Files    *Files    `json:"files,omitempty"`
	Queues   *Queues   `json:"queues,omitempty"`
}

// Queues restricts the queue splits (docs/queues.md) of sessions on the
// target.
type Queues struct {
	// BlockSplit refuses every queue split.
	BlockSplit bool `json:"blockSplit,omitempty"`
	// BlockSteal refuses splits in steal mode: sessions get copies only.
	BlockSteal bool `json:"blockSteal,omitempty"`
	// RequireFilter refuses a split without a message filter (which
	// would take, or copy, the whole queue).
	RequireFilter bool `json:"requireFilter,omitempty"`
}

// Targets selects targets. Empty selects every target (of the policy's
// namespace, or of every namespace for a cluster policy). Names and
// Selector both given: a target must match both.
type Targets struct {
	// Names are patterns over the target as remocal names it,
	// "kind/name" ("deployment/api", "pod/api-7d9f6-x2x4q"), or with its
	// container, "kind/name/container/c"; "*" matches any run of
	// characters but "/". A pattern without "/container/" matches every
	// container of the target. Any pattern matching selects the target.
	Names []string `json:"names,omitempty"`
	// Selector matches the labels of the target's object (the
	// Deployment's, the pod's, the Service's).
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Namespaces, for a cluster policy only, are patterns of the
	// namespaces it applies to ("team-*"); empty is all.
	Namespaces []string `json:"namespaces,omitempty"`
}

// Incoming restricts the traffic sessions take from the target.
type Incoming struct {
	// BlockSteal refuses every steal.
	BlockSteal bool `json:"blockSteal,omitempty"`
	// BlockUnfilteredSteal refuses a steal without an HTTP filter (which
	// would take every request of the port from the application).
	BlockUnfilteredSteal bool `json:"blockUnfilteredSteal,omitempty"`
	// BlockMirror refuses mirroring.
	BlockMirror bool `json:"blockMirror,omitempty"`
	// RequireHeader makes every steal filter on a header whose value the
	// pattern accepts.
	RequireHeader *HeaderRequirement `json:"requireHeader,omitempty"`
	// ForbidOverride refuses onConflict: override, whatever RBAC grants.
	ForbidOverride bool `json:"forbidOverride,omitempty"`
}

// HeaderRequirement: a steal must filter on header Name with a value
// Value accepts. Value is a Go regular expression matched against the
// whole value; {{user}} in it stands for the session's Kubernetes user
// name (quoted, so "alice" matches only "alice"). The steal's filter must
// give the header a literal value (a pattern without special characters),
// so that what it selects is exactly a value the policy accepts.
type HeaderRequirement struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Outgoing restricts the connections sessions open from the target.
type Outgoing struct {
	// Allow, when not empty, is the only destinations allowed.
	Allow []Destination `json:"allow,omitempty"`
	// Block lists destinations refused (even if allowed).
	Block []Destination `json:"block,omitempty"`
}

// Destination matches an outgoing connection by address and port. Host
// or CIDR (one of them, or neither for any address); Ports empty is any
// port.
type Destination struct {
	// Host is a host name pattern ("*.shop.svc.cluster.local",
	// "db.example.com"): the operator resolves names without "*" and
	// compares addresses, and matches patterns against the names the
	// address resolves back to.
	Host string `json:"host,omitempty"`
	// CIDR is an address range ("10.96.0.0/12", "fd00::/8") or address.
	CIDR  string  `json:"cidr,omitempty"`
	Ports []int32 `json:"ports,omitempty"`
}

// Env restricts the target environment sessions see.
type Env struct {
	// Exclude are variable name globs (protocol/glob) never sent.
	Exclude []string `json:"exclude,omitempty"`
}

// Files restricts the target files sessions read. Entries are absolute
// paths, a path covering everything under it, or globs (protocol/glob).
type Files struct {
	// Local paths are never read from the target: the operator refuses
	// them (not found, naming the rule files.local) and the client reads
	// the laptop's own file instead (wire.KeptLocal).
	Local []string `json:"local,omitempty"`
	// ReadOnly paths may be read but never opened for writing.
	ReadOnly []string `json:"readOnly,omitempty"`
	// NotFound paths do not exist for sessions.
	NotFound []string `json:"notFound,omitempty"`
}
