package policy

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/remocal/remocal/protocol/glob"
	"github.com/remocal/remocal/protocol/wire"
)

// Rule names, as errors, audit records and metrics name them.
const (
	RuleBlockSteal           = "incoming.blockSteal"
	RuleBlockUnfilteredSteal = "incoming.blockUnfilteredSteal"
	RuleBlockMirror          = "incoming.blockMirror"
	RuleRequireHeader        = "incoming.requireHeader"
	RuleForbidOverride       = "incoming.forbidOverride"
	RuleOutgoingAllow        = "outgoing.allow"
	RuleOutgoingBlock        = "outgoing.block"
	RuleEnvExclude           = "env.exclude"
	RuleFilesLocal           = wire.PolicyRuleFilesLocal
	RuleFilesReadOnly        = "files.readOnly"
	RuleFilesNotFound        = "files.notFound"
	RuleQueuesBlockSplit     = "queues.blockSplit"
	RuleQueuesBlockSteal     = "queues.blockSteal"
	RuleQueuesRequireFilter  = "queues.requireFilter"
	// RuleInvalid: the policy cannot be evaluated (a bad selector or
	// pattern); sessions on what it might select are refused until it is
	// fixed, rather than let through unchecked.
	RuleInvalid = "invalid"
)

// Ref names a policy.
type Ref struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// String is "RemocalPolicy shop/no-steal" or "RemocalClusterPolicy no-steal".
func (r Ref) String() string {
	if r.Namespace != "" {
		return r.Kind + " " + r.Namespace + "/" + r.Name
	}
	return r.Kind + " " + r.Name
}

// Applied is one policy that applies to a session's target.
type Applied struct {
	Ref  Ref
	Spec Spec
}

// Target is what a policy selects: a target as the session names it.
type Target struct {
	Namespace string
	// Kind and Name as remocal spells them ("deployment", "api").
	Kind, Name string
	// Container is the session's container, if it named one.
	Container string
	// Labels are the target object's labels.
	Labels map[string]string
}

// Ref is the target as users write it: "deployment/api".
func (t Target) Ref() string { return t.Kind + "/" + t.Name }

// kindAliases are the short kinds users type in -t, for name patterns.
var kindAliases = map[string]string{
	"deploy": "deployment", "deployments": "deployment", "sts": "statefulset", "rs": "replicaset",
	"po": "pod", "pods": "pod", "svc": "service", "cj": "cronjob",
}

// Selects reports whether a policy with spec, in namespace ns ("" for a
// cluster policy), applies to t. An error says the spec cannot be
// evaluated (a bad label selector).
func Selects(spec *Spec, ns string, t Target) (bool, error) {
	if ns != "" && ns != t.Namespace {
		return false, nil
	}
	if ns == "" && len(spec.Targets.Namespaces) > 0 &&
		!slices.ContainsFunc(spec.Targets.Namespaces, func(p string) bool { return glob.Match(p, t.Namespace) }) {
		return false, nil
	}
	if len(spec.Targets.Names) > 0 && !slices.ContainsFunc(spec.Targets.Names, func(p string) bool { return nameMatches(p, t) }) {
		return false, nil
	}
	if spec.Targets.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(spec.Targets.Selector)
		if err != nil {
			return false, fmt.Errorf("targets.selector: %w", err)
		}
		if !sel.Matches(labels.Set(t.Labels)) {
			return false, nil
		}
	}
	return true, nil
}

func nameMatches(pattern string, t Target) bool {
	kind, rest, _ := strings.Cut(pattern, "/")
	if k, ok := kindAliases[kind]; ok {
		kind = k
	}
	pattern = kind + "/" + rest
	subject := t.Ref()
	if strings.Contains(pattern, "/container/") {
		if t.Container == "" {
			return false
		}
		subject += "/container/" + t.Container
	}
	ok, err := path.Match(pattern, subject)
	return ok && err == nil
}

// Set is every policy that applies to one session, cluster policies
// first, each kind by name.
type Set []Applied

// Sort orders the set as Set says.
func (s Set) Sort() {
	slices.SortFunc(s, func(a, b Applied) int {
		// "RemocalClusterPolicy" sorts before "RemocalPolicy".
		return cmp.Or(strings.Compare(a.Ref.Kind, b.Ref.Kind), strings.Compare(a.Ref.Namespace, b.Ref.Namespace), strings.Compare(a.Ref.Name, b.Ref.Name))
	})
}

// Denial is a request a policy refuses.
type Denial struct {
	Policy Ref
	Rule   string
	// Message says what was refused and what to do instead.
	Message string
	// Errno is the errno a refused file request gives the program
	// (ENOENT for not-found and local paths, EROFS for writes).
	Errno int
}

func (d *Denial) Error() string {
	return fmt.Sprintf("%s denies it (rule %s): %s", d.Policy, d.Rule, d.Message)
}

// Wire is the denial as the operator answers it: permission_denied (or
// not_found for files.notFound and files.local) naming the policy.
func (d *Denial) Wire() *wire.Error {
	code := wire.CodePermissionDenied
	if d.Rule == RuleFilesNotFound || d.Rule == RuleFilesLocal {
		code = wire.CodeNotFound
	}
	return &wire.Error{Code: code, Message: d.Error(), Errno: d.Errno,
		Policy: &wire.PolicyViolation{Kind: d.Policy.Kind, Namespace: d.Policy.Namespace, Name: d.Policy.Name, Rule: d.Rule}}
}

// Invalid is the denial of everything by a policy that cannot be
// evaluated.
func Invalid(ref Ref, err error) *Denial {
	return &Denial{Policy: ref, Rule: RuleInvalid,
		Message: fmt.Sprintf("the policy is invalid (%v), so the operator refuses sessions it might restrict; ask its owners to fix it (kubectl describe %s)", err, strings.ToLower(ref.Kind))}
}

// Subscribe checks a subscription of user on target.
func (s Set) Subscribe(user string, target string, req wire.Subscribe) *Denial {
	for _, p := range s {
		in := p.Spec.Incoming
		if in == nil {
			continue
		}
		deny := func(rule, format string, args ...any) *Denial {
			return &Denial{Policy: p.Ref, Rule: rule, Message: fmt.Sprintf(format, args...)}
		}
		if req.Mode == wire.ModeMirror && in.BlockMirror {
			return deny(RuleBlockMirror, "mirroring port %d of %s is not allowed; run without incoming traffic on that port, or ask the policy's owners", req.Port, target)
		}
		if req.Mode != wire.ModeSteal {
			continue
		}
		if in.BlockSteal {
			return deny(RuleBlockSteal, "stealing port %d of %s is not allowed; mirror it instead (network.incoming.mode: mirror)", req.Port, target)
		}
		if in.BlockUnfilteredSteal && req.Filter == nil {
			return deny(RuleBlockUnfilteredSteal, "stealing port %d of %s without an HTTP filter would take every request from the application; steal with a filter (network.incoming.httpFilter) or mirror", req.Port, target)
		}
		if h := in.RequireHeader; h != nil {
			if d := requireHeader(h, user, req); d != "" {
				return deny(RuleRequireHeader, "stealing port %d of %s needs %s", req.Port, target, d)
			}
		}
		if req.Override && in.ForbidOverride {
			return deny(RuleForbidOverride, "taking port %d of %s from its holder (onConflict: override) is not allowed; use a filter that does not overlap theirs, or wait for their session to end", req.Port, target)
		}
	}
	return nil
}

// QueueSplit checks a queue split of a session on target.
func (s Set) QueueSplit(target string, req wire.QueueSplit) *Denial {
	what := fmt.Sprintf("splitting queue %s of %s for a session on %s", queueName(req), req.Consumer, target)
	for _, p := range s {
		q := p.Spec.Queues
		if q == nil {
			continue
		}
		deny := func(rule, format string, args ...any) *Denial {
			return &Denial{Policy: p.Ref, Rule: rule, Message: fmt.Sprintf(format, args...)}
		}
		if q.BlockSplit {
			return deny(RuleQueuesBlockSplit, "%s is not allowed; remove queueSplits from the configuration, or ask the policy's owners", what)
		}
		if q.BlockSteal && req.Mode == "steal" {
			return deny(RuleQueuesBlockSteal, "%s in steal mode is not allowed; mirror it instead (queueSplits[].mode: mirror)", what)
		}
		if q.RequireFilter && (req.Filter == nil || len(req.Filter.Headers)+len(req.Filter.Body) == 0) {
			return deny(RuleQueuesRequireFilter, "%s without a filter would take every message; give queueSplits[].filter headers or body", what)
		}
	}
	return nil
}

func queueName(req wire.QueueSplit) string {
	if req.Queue == "" {
		return "(the only one)"
	}
	return req.Queue
}

// ExpandUser replaces {{user}} in a header value pattern with the quoted
// user name.
func ExpandUser(pattern, user string) string {
	return strings.ReplaceAll(pattern, "{{user}}", regexp.QuoteMeta(user))
}

// requireHeader says what the request lacks, or "".
func requireHeader(h *HeaderRequirement, user string, req wire.Subscribe) string {
	want := ExpandUser(h.Value, user)
	example := ""
	if !strings.ContainsAny(want, `\.+*?()|[]{}^$`) {
		example = fmt.Sprintf(` (for example "httpFilter": {"headers": {%q: %q}})`, h.Name, want)
	}
	need := fmt.Sprintf("an HTTP filter on header %s with a value matching %q%s", http.CanonicalHeaderKey(h.Name), want, example)
	if req.Filter == nil {
		return need
	}
	var value string
	found := false
	for name, v := range req.Filter.Headers {
		if strings.EqualFold(name, h.Name) {
			value, found = v, true
		}
	}
	if !found {
		return need
	}
	re, err := regexp.Compile(`^(?:` + want + `)$`)
	if err != nil {
		return fmt.Sprintf("%s, but the policy's pattern does not compile (%v); ask its owners to fix it", need, err)
	}
	lit, ok := literal(value)
	if !ok {
		return fmt.Sprintf("%s as a literal value; the filter's %q is a pattern that may select other values", need, value)
	}
	if !re.MatchString(lit) {
		return fmt.Sprintf("%s; the filter's %q does not match", need, value)
	}
	return ""
}

// literal returns the one string a filter pattern matches, when it is a
// literal.
func literal(pattern string) (string, bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", false
	}
	re = re.Simplify()
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return "", false
		}
		return string(re.Rune), true
	case syntax.OpEmptyMatch:
		return "", true
	}
	return "", false
}

// Resolver resolves host names for outgoing rules (net.Resolver).
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Dial checks an outgoing connection to ap.
func (s Set) Dial(ctx context.Context, r Resolver, ap netip.AddrPort) *Denial {
	for _, p := range s {
		out := p.Spec.Outgoing
		if out == nil {
			continue
		}
		if len(out.Allow) > 0 && !slices.ContainsFunc(out.Allow, func(d Destination) bool { return d.matches(ctx, r, ap) }) {
			return &Denial{Policy: p.Ref, Rule: RuleOutgoingAllow,
				Message: fmt.Sprintf("connections to %s are not in the allowed destinations (%s); reach it locally, or ask the policy's owners", ap, describeDests(out.Allow))}
		}
		for _, d := range out.Block {
			if d.matches(ctx, r, ap) {
				return &Denial{Policy: p.Ref, Rule: RuleOutgoingBlock,
					Message: fmt.Sprintf("connections to %s are blocked (%s); reach it locally, or ask the policy's owners", ap, d)}
			}
		}
	}
	return nil
}

func (d Destination) matches(ctx context.Context, r Resolver, ap netip.AddrPort) bool {
	if len(d.Ports) > 0 && !slices.Contains(d.Ports, int32(ap.Port())) {
		return false
	}
	addr := ap.Addr().Unmap()
	switch {
	case d.CIDR != "":
		if pfx, err := netip.ParsePrefix(d.CIDR); err == nil {
			return pfx.Contains(addr)
		}
		a, err := netip.ParseAddr(d.CIDR)
		return err == nil && a.Unmap() == addr
	case d.Host != "" && r != nil:
		if !strings.Contains(d.Host, "*") {
			addrs, err := r.LookupHost(ctx, d.Host)
			if err != nil {
				return false
			}
			return slices.ContainsFunc(addrs, func(s string) bool {
				a, err := netip.ParseAddr(s)
				return err == nil && a.Unmap() == addr
			})
		}
		names, err := r.LookupAddr(ctx, addr.String())
		if err != nil {
			return false
		}
		return slices.ContainsFunc(names, func(n string) bool { return glob.Match(d.Host, strings.TrimSuffix(n, ".")) })
	case d.Host != "":
		return false
	}
	return true
}

func (d Destination) String() string {
	var parts []string
	switch {
	case d.Host != "":
		parts = append(parts, "host "+d.Host)
	case d.CIDR != "":
		parts = append(parts, d.CIDR)
	default:
		parts = append(parts, "any address")
	}
	if len(d.Ports) > 0 {
		ps := make([]string, len(d.Ports))
		for i, p := range d.Ports {
			ps[i] = fmt.Sprint(p)
		}
		parts = append(parts, "port "+strings.Join(ps, ","))
	}
	return strings.Join(parts, " ")
}

func describeDests(ds []Destination) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return strings.Join(out, "; ")
}

// EnvExclude is every variable glob the policies exclude.
func (s Set) EnvExclude() []string {
	var out []string
	for _, p := range s {
		if p.Spec.Env != nil {
			out = append(out, p.Spec.Env.Exclude...)
		}
	}
	return out
}

// FilterEnv removes the excluded variables from vars (the agent was asked
// to exclude them too; this holds whatever it answered).
func (s Set) FilterEnv(vars map[string]string) {
	ex := glob.NewSelector(nil, s.EnvExclude())
	for name := range vars {
		if !ex.Selects(name) {
			delete(vars, name)
		}
	}
}

// File checks a request for path; write says it asks for write access.
func (s Set) File(p string, write bool) *Denial {
	p = path.Clean(p)
	for _, pol := range s {
		f := pol.Spec.Files
		if f == nil {
			continue
		}
		if slices.ContainsFunc(f.NotFound, func(c string) bool { return covers(c, p) }) {
			return &Denial{Policy: pol.Ref, Rule: RuleFilesNotFound, Errno: int(enoent),
				Message: fmt.Sprintf("%s does not exist for remocal sessions on this target", p)}
		}
		if slices.ContainsFunc(f.Local, func(c string) bool { return covers(c, p) }) {
			return &Denial{Policy: pol.Ref, Rule: RuleFilesLocal, Errno: int(enoent),
				Message: fmt.Sprintf("%s is never read from the target; the program gets this machine's file instead", p)}
		}
		if write && slices.ContainsFunc(f.ReadOnly, func(c string) bool { return covers(c, p) }) {
			return &Denial{Policy: pol.Ref, Rule: RuleFilesReadOnly, Errno: int(erofs),
				Message: fmt.Sprintf("%s is read-only for remocal sessions on this target", p)}
		}
	}
	return nil
}

// covers reports whether a files entry (a path, covering what is under
// it, or a glob) covers p.
func covers(entry, p string) bool {
	if strings.ContainsAny(entry, "*?") {
		for q := p; ; q = path.Dir(q) {
			if glob.Match(entry, q) {
				return true
			}
			if q == "/" || q == "." {
				return false
			}
		}
	}
	entry = path.Clean(entry)
	return p == entry || strings.HasPrefix(p, strings.TrimSuffix(entry, "/")+"/")
}

// errnos, without importing syscall into the contract's users' builds.
const (
	enoent = 2
	erofs  = 30
)

// Describe lists what spec allows and forbids, one line per rule, for
// humans (remocal operator policies); user "" leaves {{user}} as is.
func (spec *Spec) Describe(user string) []string {
	var out []string
	if in := spec.Incoming; in != nil {
		if in.BlockSteal {
			out = append(out, "incoming: no steal (mirror only)")
		} else if in.BlockUnfilteredSteal {
			out = append(out, "incoming: steal only with an HTTP filter")
		}
		if in.BlockMirror {
			out = append(out, "incoming: no mirror")
		}
		if h := in.RequireHeader; h != nil {
			v := h.Value
			if user != "" {
				v = ExpandUser(v, user)
			}
			out = append(out, fmt.Sprintf("incoming: a steal must filter on header %s = %q", http.CanonicalHeaderKey(h.Name), v))
		}
		if in.ForbidOverride {
			out = append(out, "incoming: no onConflict: override")
		}
	}
	if q := spec.Queues; q != nil {
		switch {
		case q.BlockSplit:
			out = append(out, "queues: no queue splits")
		case q.BlockSteal:
			out = append(out, "queues: splits mirror only")
		}
		if q.RequireFilter && !q.BlockSplit {
			out = append(out, "queues: a split must filter messages")
		}
	}
	if o := spec.Outgoing; o != nil {
		if len(o.Allow) > 0 {
			out = append(out, "outgoing: only to "+describeDests(o.Allow))
		}
		if len(o.Block) > 0 {
			out = append(out, "outgoing: never to "+describeDests(o.Block))
		}
	}
	if e := spec.Env; e != nil && len(e.Exclude) > 0 {
		out = append(out, "env: without "+strings.Join(e.Exclude, ", "))
	}
	if f := spec.Files; f != nil {
		if len(f.Local) > 0 {
			out = append(out, "files: never from the target: "+strings.Join(f.Local, ", "))
		}
		if len(f.ReadOnly) > 0 {
			out = append(out, "files: read-only: "+strings.Join(f.ReadOnly, ", "))
		}
		if len(f.NotFound) > 0 {
			out = append(out, "files: not found: "+strings.Join(f.NotFound, ", "))
		}
	}
	if len(out) == 0 {
		out = append(out, "no restriction")
	}
	return out
}

// DialAddr parses a wire dial's numeric address.
func DialAddr(address string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		host, port, herr := net.SplitHostPort(address)
		if herr != nil {
			return netip.AddrPort{}, err
		}
		a, aerr := netip.ParseAddr(host)
		if aerr != nil {
			return netip.AddrPort{}, err
		}
		var n uint16
		if _, serr := fmt.Sscan(port, &n); serr != nil {
			return netip.AddrPort{}, err
		}
		return netip.AddrPortFrom(a, n), nil
	}
	return ap, nil
}
