// Package config reads the user's configuration file, .remocal/config.json.
//
// The file is JSON with comments and trailing commas allowed, so people can
// annotate it the way they annotate code. It is checked strictly: an unknown
// key or a wrong type is an error, never silently ignored, because a typo in
// an ignored key ("ignorePort") would otherwise quietly change what runs
// against a shared remote environment. The JSON Schema (Schema) is the
// single description of the format: IDEs use it for completion and
// validation, and Parse validates against the same document before decoding,
// so the editor and remocal cannot disagree about what is valid.
package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/remocal/remocal/protocol/glob"
	"github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/protocol/wire"
)

// Config is the contents of a configuration file. Fields left empty mean
// "use the default"; WithDefaults spells the defaults out. Booleans whose
// default is true are pointers, because only a pointer can tell an explicit
// false from an absent key.
type Config struct {
	// Schema lets editors find the JSON Schema; remocal ignores it.
	Schema     string     `json:"$schema,omitempty"`
	Target     string     `json:"target,omitempty"`
	Kubernetes Kubernetes `json:"kubernetes,omitzero"`
	Agent      Agent      `json:"agent,omitzero"`
	Env        Env        `json:"env,omitzero"`
	FS         FS         `json:"fs,omitzero"`
	Network    Network    `json:"network,omitzero"`
	Processes  Processes  `json:"processes,omitzero"`
	Hostname   *bool      `json:"hostname,omitempty"`
	// Operator says whether Kubernetes targets are reached through the
	// operator.
	Operator OperatorMode `json:"operator,omitempty"`
	// QueueSplits ask the operator for the messages of shared queues
	// that match a filter (protocol/queuesplit, docs/queues.md).
	QueueSplits []queuesplit.Split `json:"queueSplits,omitempty"`
}

// OperatorMode says whether Kubernetes targets are reached through the
// operator: in JSON "auto", true or false.
type OperatorMode string

// Operator modes.
const (
	// OperatorAuto uses the operator when the cluster has an available
	// one, else reaches the agents directly.
	OperatorAuto OperatorMode = "auto"
	// OperatorAlways uses only the operator (JSON true).
	OperatorAlways OperatorMode = "true"
	// OperatorNever never uses it (JSON false).
	OperatorNever OperatorMode = "false"
)

// ParseOperatorMode reads a flag's value: auto, true or false.
func ParseOperatorMode(s string) (OperatorMode, error) {
	switch m := OperatorMode(s); m {
	case OperatorAuto, OperatorAlways, OperatorNever:
		return m, nil
	}
	return "", fmt.Errorf(`got %q, expected one of "auto", "true", "false"`, s)
}

// MarshalJSON writes true and false as booleans and auto as a string.
func (m OperatorMode) MarshalJSON() ([]byte, error) {
	switch m {
	case OperatorAlways, OperatorNever:
		return []byte(m), nil
	}
	return json.Marshal(string(m))
}

// UnmarshalJSON reads "auto", true or false. Parse reaches this only with
// values the schema already accepted.
func (m *OperatorMode) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v {
	case true:
		*m = OperatorAlways
	case false:
		*m = OperatorNever
	case string(OperatorAuto):
		*m = OperatorAuto
	default:
		return fmt.Errorf(`got %s, expected "auto", true or false`, b)
	}
	return nil
}

// Kubernetes selects the cluster and namespace of Kubernetes targets, as
// kubectl's flags of the same names do; the flags override it.
type Kubernetes struct {
	Kubeconfig string `json:"kubeconfig,omitempty"`
	Context    string `json:"context,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	// AllowTargets allows targets remocal refuses by default.
	AllowTargets AllowTargets `json:"allowTargets,omitzero"`
	// Transport is how the client reaches an agent it started: directly
	// over the pod network when it can, else through a port-forward
	// (auto, the default), or only one of the two.
	Transport Transport `json:"transport,omitempty"`
}

// Transport is how a client reaches the agents it starts in a cluster.
type Transport string

// Transports.
const (
	// TransportAuto dials the agent's pod directly (TLS, its pinned
	// certificate) and falls back to a port-forward when the pod network
	// cannot be reached from here.
	TransportAuto Transport = "auto"
	// TransportDirect dials the agent's pod only: an in-cluster
	// devcontainer, a VPN into the pod network.
	TransportDirect Transport = "direct"
	// TransportPortForward goes through the apiserver and kubelet only.
	TransportPortForward Transport = "port-forward"
)

// ParseTransport reads a flag's value: auto, direct or port-forward.
func ParseTransport(s string) (Transport, error) {
	switch t := Transport(s); t {
	case TransportAuto, TransportDirect, TransportPortForward:
		return t, nil
	}
	return "", fmt.Errorf(`got %q, expected one of "auto", "direct", "port-forward"`, s)
}

// AllowTargets allows targets remocal refuses by default, where a session
// reaches beyond the target.
type AllowTargets struct {
	// KubeSystem allows pods in namespace kube-system.
	KubeSystem bool `json:"kubeSystem,omitempty"`
	// StaticPods allows static pods (a kubelet's, from files).
	StaticPods bool `json:"staticPods,omitempty"`
	// ControlPlane allows pods on control-plane nodes.
	ControlPlane bool `json:"controlPlane,omitempty"`
}

// Agent says how to reach the agent beside the target.
type Agent struct {
	// Address skips starting an agent: "unix:PATH" or "tcp:HOST:PORT".
	Address string   `json:"address,omitempty"`
	IdleTTL Duration `json:"idleTTL,omitzero"`
	// The agent's pod for Kubernetes targets.
	Image           string `json:"image,omitempty"`
	Namespace       string `json:"namespace,omitempty"`
	ImagePullPolicy string `json:"imagePullPolicy,omitempty"`
	// ImagePullSecrets name Secrets in the agent's namespace that hold
	// the credentials of a private registry.
	ImagePullSecrets []string          `json:"imagePullSecrets,omitempty"`
	Tolerations      []Toleration      `json:"tolerations,omitempty"`
	Resources        *Resources        `json:"resources,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	Annotations      map[string]string `json:"annotations,omitempty"`
	StartupTimeout   Duration          `json:"startupTimeout,omitzero"`
	Ephemeral        bool              `json:"ephemeral,omitempty"`
}

// Toleration is a pod toleration, as in a pod spec.
type Toleration struct {
	Key               string `json:"key,omitempty"`
	Operator          string `json:"operator,omitempty"`
	Value             string `json:"value,omitempty"`
	Effect            string `json:"effect,omitempty"`
	TolerationSeconds *int   `json:"tolerationSeconds,omitempty"`
}

// Resources are a container's requests and limits ("100m", "64Mi").
type Resources struct {
	Requests map[string]string `json:"requests,omitempty"`
	Limits   map[string]string `json:"limits,omitempty"`
}

// Env selects the target's environment variables.
type Env struct {
	// Include and Exclude hold protocol/glob patterns; an empty Include
	// selects every variable.
	Include  []string          `json:"include,omitempty"`
	Exclude  []string          `json:"exclude,omitempty"`
	Override map[string]string `json:"override,omitempty"`
}

// Selector returns the glob selector the agent applies for Include and
// Exclude.
func (e Env) Selector() glob.Selector { return glob.NewSelector(e.Include, e.Exclude) }

// FSMode says where files come from.
type FSMode string

// File system modes.
const (
	// FSRead reads the target's files; writes stay on this machine.
	FSRead FSMode = "read"
	// FSLocal uses only this machine's files.
	FSLocal FSMode = "local"
)

// FS chooses which files are read from the target.
type FS struct {
	Mode FSMode `json:"mode,omitempty"`
	// Local and Remote hold absolute path prefixes or globs ('*' within a
	// component, "**" across components) that override Mode.
	Local  []string `json:"local,omitempty"`
	Remote []string `json:"remote,omitempty"`
}

// Network configures incoming, outgoing and DNS traffic.
type Network struct {
	Incoming Incoming `json:"incoming,omitzero"`
	Outgoing Outgoing `json:"outgoing,omitzero"`
	DNS      DNS      `json:"dns,omitzero"`
}

// IncomingMode says what happens to connections the target receives.
type IncomingMode string

// Incoming modes.
const (
	// IncomingMirror sends a copy to the local process; the target still
	// answers.
	IncomingMirror IncomingMode = "mirror"
	// IncomingSteal takes connections (or, with an HTTP filter, matching
	// requests) away from the target.
	IncomingSteal IncomingMode = "steal"
	// IncomingOff leaves incoming traffic alone.
	IncomingOff IncomingMode = "off"
)

// Valid reports whether m is one of the modes; "" (the default, mirror)
// is not one.
func (m IncomingMode) Valid() bool {
	return m == IncomingMirror || m == IncomingSteal || m == IncomingOff
}

// Incoming configures traffic the target receives.
type Incoming struct {
	Mode       IncomingMode     `json:"mode,omitempty"`
	HTTPFilter *wire.HTTPFilter `json:"httpFilter,omitempty"`
	// Ports limits subscriptions to these local listen ports; empty means
	// every port the local process listens on.
	Ports       []uint16 `json:"ports,omitempty"`
	IgnorePorts []uint16 `json:"ignorePorts,omitempty"`
	// PortMapping maps a local listen port to the target's port, for a
	// local process that cannot listen on the target's port.
	PortMapping map[uint16]uint16 `json:"portMapping,omitempty"`
	// OnConflict says what happens when another session holds a port.
	OnConflict OnConflict `json:"onConflict,omitempty"`
}

// OnConflict says what a session does when a port it wants is held.
type OnConflict string

// Conflict policies.
const (
	// ConflictAbort ends the session, naming the holder.
	ConflictAbort OnConflict = "abort"
	// ConflictContinue runs without the port, saying so.
	ConflictContinue OnConflict = "continue"
	// ConflictOverride takes the port (through the operator only, when RBAC
	// grants the user override on the target).
	ConflictOverride OnConflict = "override"
)

// Valid reports whether c is one of the policies; "" (the default,
// abort) is not one.
func (c OnConflict) Valid() bool {
	return c == ConflictAbort || c == ConflictContinue || c == ConflictOverride
}

// Outgoing configures connections the local process makes.
type Outgoing struct {
	TCP             *bool  `json:"tcp,omitempty"`
	UDP             *bool  `json:"udp,omitempty"`
	IgnoreLocalhost *bool  `json:"ignoreLocalhost,omitempty"`
	Filter          Filter `json:"filter,omitzero"`
}

// DNS configures name resolution.
type DNS struct {
	Enabled *bool  `json:"enabled,omitempty"`
	Filter  Filter `json:"filter,omitzero"`
}

// Filter splits traffic between the target and this machine. At most one
// list is set: Remote sends only its entries through the target, Local keeps
// only its entries on this machine. Neither set means everything goes
// through the target.
type Filter struct {
	Remote []string `json:"remote,omitempty"`
	Local  []string `json:"local,omitempty"`
}

// Processes lists programs that must never be redirected.
type Processes struct {
	// Local adds executable names to the built-in list of programs whose
	// system calls are never intercepted.
	Local []string `json:"local,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("90s").
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string. Parse reaches this only with values
// the schema already accepted.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("expected a duration string such as \"90s\": %w", err)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Defaults. They are also stated in the schema, and a test keeps the two in
// agreement.
const (
	DefaultIdleTTL      = Duration(time.Minute)
	DefaultFSMode       = FSRead
	DefaultIncomingMode = IncomingMirror
	DefaultOnConflict   = ConflictAbort
	DefaultOperator     = OperatorAuto
	DefaultTransport    = TransportAuto
)

// WithDefaults returns a deep copy of c with every unset field that has a
// default filled in, so consumers never re-implement the defaults. Explicit
// values, including an explicit false, are kept.
func (c *Config) WithDefaults() *Config {
	d := c.clone()
	if d.Agent.IdleTTL == 0 {
		d.Agent.IdleTTL = DefaultIdleTTL
	}
	if d.Agent.StartupTimeout == 0 {
		d.Agent.StartupTimeout = Duration(time.Minute)
	}
	if d.Agent.ImagePullPolicy == "" {
		d.Agent.ImagePullPolicy = "IfNotPresent"
	}
	if len(d.Env.Include) == 0 {
		d.Env.Include = []string{"*"}
	}
	if d.FS.Mode == "" {
		d.FS.Mode = DefaultFSMode
	}
	if d.Network.Incoming.Mode == "" {
		d.Network.Incoming.Mode = DefaultIncomingMode
	}
	if d.Network.Incoming.OnConflict == "" {
		d.Network.Incoming.OnConflict = DefaultOnConflict
	}
	if d.Operator == "" {
		d.Operator = DefaultOperator
	}
	if d.Kubernetes.Transport == "" {
		d.Kubernetes.Transport = DefaultTransport
	}
	for _, b := range []**bool{&d.Network.Outgoing.TCP, &d.Network.Outgoing.UDP, &d.Network.Outgoing.IgnoreLocalhost, &d.Network.DNS.Enabled, &d.Hostname} {
		if *b == nil {
			*b = ptr(true)
		}
	}
	return d
}

func ptr[T any](v T) *T { return &v }

func (c *Config) clone() *Config {
	d := *c
	d.Agent.Tolerations = slices.Clone(c.Agent.Tolerations)
	d.Agent.ImagePullSecrets = slices.Clone(c.Agent.ImagePullSecrets)
	d.Agent.Labels = maps.Clone(c.Agent.Labels)
	d.Agent.Annotations = maps.Clone(c.Agent.Annotations)
	if r := c.Agent.Resources; r != nil {
		d.Agent.Resources = &Resources{Requests: maps.Clone(r.Requests), Limits: maps.Clone(r.Limits)}
	}
	d.Env.Include = slices.Clone(c.Env.Include)
	d.Env.Exclude = slices.Clone(c.Env.Exclude)
	d.Env.Override = maps.Clone(c.Env.Override)
	d.FS.Local = slices.Clone(c.FS.Local)
	d.FS.Remote = slices.Clone(c.FS.Remote)
	in := &d.Network.Incoming
	if f := c.Network.Incoming.HTTPFilter; f != nil {
		in.HTTPFilter = &wire.HTTPFilter{Headers: maps.Clone(f.Headers), Path: f.Path, Methods: slices.Clone(f.Methods)}
	}
	in.Ports = slices.Clone(in.Ports)
	in.IgnorePorts = slices.Clone(in.IgnorePorts)
	in.PortMapping = maps.Clone(in.PortMapping)
	out := &d.Network.Outgoing
	out.TCP, out.UDP, out.IgnoreLocalhost = clonePtr(out.TCP), clonePtr(out.UDP), clonePtr(out.IgnoreLocalhost)
	out.Filter = cloneFilter(out.Filter)
	d.Network.DNS.Enabled = clonePtr(d.Network.DNS.Enabled)
	d.Network.DNS.Filter = cloneFilter(d.Network.DNS.Filter)
	d.Processes.Local = slices.Clone(c.Processes.Local)
	d.Hostname = clonePtr(c.Hostname)
	if c.QueueSplits != nil {
		d.QueueSplits = make([]queuesplit.Split, len(c.QueueSplits))
		for i, sp := range c.QueueSplits {
			d.QueueSplits[i] = sp.Clone()
		}
	}
	return &d
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	return ptr(*p)
}

func cloneFilter(f Filter) Filter {
	return Filter{Remote: slices.Clone(f.Remote), Local: slices.Clone(f.Local)}
}

// Validate applies the rules of the schema and the checks between fields to
// a Config built in code, typically a file's Config changed by
// command-line flags (Parse has already applied them to what it returns).
// Unlike Parse it accepts settings that merely have no effect, such as an
// HTTP filter with incoming mode "off": a flag that turns incoming traffic
// off for one run should not require editing the file. The error is an
// *Error without line numbers.
func (c *Config) Validate() error {
	if ps := c.problems(false); len(ps) > 0 {
		sortProblems(ps)
		return &Error{Problems: ps}
	}
	return nil
}

// problems checks values and the relations between fields. Values the
// schema rejected were removed before decoding, so in Parse these checks
// see only well-formed values and add what a schema cannot say. inFile
// adds the checks for settings that contradict each other within one file.
func (c *Config) problems(inFile bool) []Problem {
	var ps []Problem
	add := func(path string, err error) {
		if err != nil {
			ps = append(ps, Problem{Path: path, Message: err.Error()})
		}
	}
	if c.Target != "" {
		_, err := ParseTarget(c.Target)
		add("$.target", err)
	}
	if ns := c.Kubernetes.Namespace; ns != "" {
		if err := checkDNSLabel(ns, false); err != nil {
			add("$.kubernetes.namespace", fmt.Errorf("got %q, a namespace name %v", ns, err))
		}
	}
	if t := c.Kubernetes.Transport; t != "" {
		_, err := ParseTransport(string(t))
		add("$.kubernetes.transport", err)
	}
	if c.Agent.Address != "" {
		add("$.agent.address", checkAgentAddress(c.Agent.Address))
	}
	for i, name := range c.Agent.ImagePullSecrets {
		if err := checkDNSSubdomain(name); err != nil {
			add(indexPath("$.agent.imagePullSecrets", i), fmt.Errorf("got %q, a Secret name %v", name, err))
		}
	}
	if c.Agent.IdleTTL < 0 {
		add("$.agent.idleTTL", fmt.Errorf("got %q, expected a duration greater than zero", time.Duration(c.Agent.IdleTTL)))
	}
	for k := range c.Env.Override {
		add(keyPath("$.env.override", k), checkEnvName(k))
	}
	switch c.FS.Mode {
	case "", FSRead, FSLocal:
	default:
		add("$.fs.mode", fmt.Errorf(`got %q, expected one of "read", "local"`, c.FS.Mode))
	}
	for i, p := range c.FS.Local {
		add(indexPath("$.fs.local", i), checkPathRule(p))
	}
	for i, p := range c.FS.Remote {
		add(indexPath("$.fs.remote", i), checkPathRule(p))
	}
	ps = append(ps, c.Network.Incoming.problems("$.network.incoming", inFile)...)
	ps = append(ps, filterProblems("$.network.outgoing.filter", c.Network.Outgoing.Filter, func(s string) error {
		_, err := ParseEndpoint(s)
		return err
	})...)
	ps = append(ps, filterProblems("$.network.dns.filter", c.Network.DNS.Filter, checkDNSPattern)...)
	for i, p := range c.Processes.Local {
		add(indexPath("$.processes.local", i), checkExecutableName(p))
	}
	if c.Operator != "" {
		_, err := ParseOperatorMode(string(c.Operator))
		add("$.operator", err)
	}
	return append(ps, queueSplitProblems(c.QueueSplits)...)
}

// queueSplitProblems applies protocol/queuesplit's checks, each problem
// at its own path, and refuses two splits of one queue.
func queueSplitProblems(splits []queuesplit.Split) []Problem {
	var ps []Problem
	seen := map[string]int{}
	for i, s := range splits {
		at := indexPath("$.queueSplits", i)
		for _, p := range s.Problems() {
			path := at
			for _, k := range p.Field {
				path = keyPath(path, k)
			}
			ps = append(ps, Problem{Path: path, Message: p.Message})
		}
		if j, dup := seen[s.QueueKey()]; dup && s.Consumer != "" {
			ps = append(ps, Problem{Path: at, Message: fmt.Sprintf("queue %q is already split at index %d; a session splits each queue once, so merge the two", s.QueueKey(), j)})
		} else {
			seen[s.QueueKey()] = i
		}
	}
	return ps
}

func (in *Incoming) problems(at string, inFile bool) []Problem {
	var ps []Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if in.Mode != "" && !in.Mode.Valid() {
		add(at+".mode", `got %q, expected one of "mirror", "steal", "off"`, in.Mode)
	}
	if in.OnConflict != "" && !in.OnConflict.Valid() {
		add(at+".onConflict", `got %q, expected one of "abort", "continue", "override"`, in.OnConflict)
	}
	if f := in.HTTPFilter; f != nil {
		fp := at + ".httpFilter"
		if inFile && in.Mode == IncomingOff {
			add(fp, `an HTTP filter has no effect when mode is "off"; remove it or set mode to "mirror" or "steal"`)
		}
		// Validate each part on its own so every bad pattern is reported
		// at its own path; the rules stay those of wire.HTTPFilter.
		if err := f.Validate(); err != nil && len(f.Headers) == 0 && f.Path == "" && len(f.Methods) == 0 {
			add(fp, "%v", err)
		}
		for _, name := range slices.Sorted(maps.Keys(f.Headers)) {
			part := wire.HTTPFilter{Headers: map[string]string{name: f.Headers[name]}}
			if err := part.Validate(); err != nil {
				add(keyPath(fp+".headers", name), "%v", err)
			}
		}
		if f.Path != "" {
			part := wire.HTTPFilter{Path: f.Path}
			if err := part.Validate(); err != nil {
				add(fp+".path", "%v", err)
			}
		}
		for i, m := range f.Methods {
			part := wire.HTTPFilter{Methods: []string{m}}
			if err := part.Validate(); err != nil {
				add(indexPath(fp+".methods", i), "%v", err)
			}
		}
	}
	checkPorts := func(name string, ports []uint16) {
		seen := map[uint16]int{}
		for i, p := range ports {
			if p == 0 {
				add(indexPath(at+"."+name, i), "got 0, expected a port number from 1 to 65535")
			} else if j, dup := seen[p]; dup {
				add(indexPath(at+"."+name, i), "port %d is already listed at index %d; list each port once", p, j)
			} else {
				seen[p] = i
			}
		}
	}
	checkPorts("ports", in.Ports)
	checkPorts("ignorePorts", in.IgnorePorts)
	if in.Ports != nil && len(in.Ports) == 0 {
		add(at+".ports", "got an empty list, expected at least one port; omit ports to subscribe every port")
	}
	for i, p := range in.IgnorePorts {
		if p != 0 && slices.Contains(in.Ports, p) {
			add(indexPath(at+".ignorePorts", i), "port %d is also listed in ports; a port cannot be both subscribed and ignored", p)
		}
	}
	for _, local := range slices.Sorted(maps.Keys(in.PortMapping)) {
		path := keyPath(at+".portMapping", strconv.Itoa(int(local)))
		if local == 0 {
			add(path, `got key "0", expected a local port number from 1 to 65535`)
		} else if in.PortMapping[local] == 0 {
			add(path, "got 0, expected a remote port number from 1 to 65535")
		}
	}
	return ps
}

func filterProblems(at string, f Filter, check func(string) error) []Problem {
	var ps []Problem
	if len(f.Remote) > 0 && len(f.Local) > 0 {
		ps = append(ps, Problem{Path: at, Message: `got both "local" and "remote", expected exactly one of them`})
	}
	for name, list := range map[string][]string{"remote": f.Remote, "local": f.Local} {
		for i, s := range list {
			if err := check(s); err != nil {
				ps = append(ps, Problem{Path: indexPath(at+"."+name, i), Message: err.Error()})
			}
		}
	}
	return ps
}
