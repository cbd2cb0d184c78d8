package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The checks in this file back both the schema's custom formats (so a bad
// value is reported with its exact JSON path while validating) and
// Config.Validate (so a Config assembled in code, say from command-line
// flags, is held to the same rules). Each error says what was found and what
// is expected, because it reaches the user verbatim.

// TargetKind names the kind of thing a target string selects.
type TargetKind string

// Target kinds.
const (
	TargetPID         TargetKind = "pid"
	TargetTargetless  TargetKind = "targetless"
	TargetPod         TargetKind = "pod"
	TargetDeployment  TargetKind = "deployment"
	TargetStatefulSet TargetKind = "statefulset"
	TargetReplicaSet  TargetKind = "replicaset"
	TargetJob         TargetKind = "job"
	TargetCronJob     TargetKind = "cronjob"
	TargetService     TargetKind = "service"
	// TargetSelector selects pods by label: "selector/app=api,tier=web".
	TargetSelector TargetKind = "selector"
)

// WorkloadKinds are the Kubernetes kinds a target names by "<kind>/<name>",
// in the order remocal lists them.
var WorkloadKinds = []TargetKind{TargetPod, TargetDeployment, TargetStatefulSet, TargetReplicaSet, TargetJob, TargetCronJob, TargetService}

// ParseKind returns the workload kind s names, as a target spells it or by
// one of kubectl's short and plural names ("deploy", "svc", "pods").
func ParseKind(s string) (TargetKind, bool) {
	kind := TargetKind(s)
	if alias, ok := kindAliases[s]; ok {
		kind = alias
	}
	return kind, slices.Contains(WorkloadKinds, kind)
}

// kindAliases are kubectl's short and plural names for the kinds, so that
// `-t deploy/api` works as it does for kubectl.
var kindAliases = map[string]TargetKind{
	"po": TargetPod, "pods": TargetPod,
	"deploy": TargetDeployment, "deployments": TargetDeployment,
	"sts": TargetStatefulSet, "statefulsets": TargetStatefulSet,
	"rs": TargetReplicaSet, "replicasets": TargetReplicaSet,
	"jobs": TargetJob,
	"cj":   TargetCronJob, "cronjobs": TargetCronJob,
	"svc": TargetService, "services": TargetService,
}

// Target is a parsed target string.
type Target struct {
	Kind TargetKind
	// PID is set for TargetPID.
	PID int
	// Name is the workload's name for the Kubernetes kinds.
	Name string
	// Container is the container within the workload's pod; "" lets the
	// target's default container be chosen.
	Container string
}

// String renders t in the form ParseTarget accepts.
func (t Target) String() string {
	switch t.Kind {
	case TargetPID:
		return "pid/" + strconv.Itoa(t.PID)
	case TargetTargetless:
		return string(TargetTargetless)
	}
	s := string(t.Kind) + "/" + t.Name
	if t.Container != "" {
		s += "/container/" + t.Container
	}
	return s
}

const targetForms = `"pid/<process id>", "targetless", "selector/<label selector>", or "<kind>/<name>" optionally followed by "/container/<name>", where kind is pod, deployment, statefulset, replicaset, job, cronjob or service (or kubectl's short names: po, deploy, sts, rs, cj, svc)`

// ParseTarget parses the target syntax of the configuration file.
func ParseTarget(s string) (Target, error) {
	bad := func(format string, args ...any) (Target, error) {
		return Target{}, fmt.Errorf("got %q, %s", s, fmt.Sprintf(format, args...))
	}
	if s == string(TargetTargetless) {
		return Target{Kind: TargetTargetless}, nil
	}
	if sel, ok := strings.CutPrefix(s, string(TargetSelector)+"/"); ok {
		// Label keys may contain "/", so only a trailing "/container/NAME"
		// is split off.
		t := Target{Kind: TargetSelector, Name: sel}
		if i := strings.LastIndex(sel, "/container/"); i >= 0 {
			t.Name, t.Container = sel[:i], sel[i+len("/container/"):]
		}
		if t.Name == "" || !strings.ContainsAny(t.Name, "=!") && !strings.Contains(t.Name, " in ") {
			return bad(`expected "selector/<label selector>", such as "selector/app=api,tier=web"`)
		}
		return t, nil
	}
	parts := strings.Split(s, "/")
	kind, _ := ParseKind(parts[0])
	if kind == TargetPID {
		if len(parts) != 2 {
			if len(parts) > 2 {
				return bad(`expected "pid/<process id>" (a process has no containers to select)`)
			}
			return bad(`expected "pid/<process id>", such as "pid/1234"`)
		}
		pid, err := strconv.Atoi(parts[1])
		if err != nil || pid <= 0 || parts[1][0] == '+' || parts[1][0] == '0' {
			return bad(`expected a positive process id after "pid/", such as "pid/1234"`)
		}
		return Target{Kind: TargetPID, PID: pid}, nil
	}
	if !slices.Contains(WorkloadKinds, kind) {
		if len(parts) == 1 {
			return bad("expected %s", targetForms)
		}
		return bad("unknown kind %q; expected %s", parts[0], targetForms)
	}
	t := Target{Kind: kind}
	switch {
	case len(parts) == 2:
	case len(parts) == 4 && parts[2] == "container":
		t.Container = parts[3]
		if err := checkDNSLabel(t.Container, false); err != nil {
			return bad("container name %q %v", t.Container, err)
		}
	default:
		return bad(`expected "%s/<name>" optionally followed by "/container/<name>"`, kind)
	}
	t.Name = parts[1]
	var err error
	if kind == TargetService {
		err = checkDNSLabel(t.Name, true)
	} else {
		err = checkDNSSubdomain(t.Name)
	}
	if err != nil {
		return bad("%s name %q %v", kind, t.Name, err)
	}
	return t, nil
}

// Kubernetes names: DNS-1123 labels and subdomains (RFC 1123 as Kubernetes
// applies it: lower case only), and for services DNS-1035 labels, which must
// start with a letter.
func checkDNSLabel(s string, letterFirst bool) error {
	switch {
	case s == "":
		return errors.New("is empty; expected a name")
	case len(s) > 63:
		return fmt.Errorf("is %d characters long; expected at most 63", len(s))
	case letterFirst && !(s[0] >= 'a' && s[0] <= 'z'):
		return errors.New("must start with a lower-case letter")
	}
	return checkLowerAlnumDash(s, false)
}

func checkDNSSubdomain(s string) error {
	switch {
	case s == "":
		return errors.New("is empty; expected a name")
	case len(s) > 253:
		return fmt.Errorf("is %d characters long; expected at most 253", len(s))
	}
	return checkLowerAlnumDash(s, true)
}

func checkLowerAlnumDash(s string, dots bool) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (dots && c == '.') {
			continue
		}
		if dots {
			return errors.New("may contain only lower-case letters, digits, '-' and '.'")
		}
		return errors.New("may contain only lower-case letters, digits and '-'")
	}
	if !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return errors.New("must start and end with a lower-case letter or digit")
	}
	if dots {
		for _, label := range strings.Split(s, ".") {
			if label == "" || !isAlnum(label[0]) || !isAlnum(label[len(label)-1]) {
				return errors.New("must consist of dot-separated parts that start and end with a letter or digit")
			}
		}
	}
	return nil
}

func isAlnum(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') }

// Endpoint is a parsed entry of network.outgoing.filter: a destination
// selected by host or address range and optionally by port.
type Endpoint struct {
	// Host is a DNS name; "" when Prefix is set or only a port is given.
	Host string
	// Prefix is the address range; a single address is a full-length
	// prefix. Invalid (the zero value) when Host is set or only a port is
	// given.
	Prefix netip.Prefix
	// Port selects one destination port; 0 selects every port.
	Port uint16
}

// String renders e in the form ParseEndpoint accepts.
func (e Endpoint) String() string {
	host := e.Host
	if e.Prefix.IsValid() {
		if e.Prefix.IsSingleIP() {
			host = e.Prefix.Addr().String()
		} else {
			host = e.Prefix.String()
		}
		if e.Port != 0 && e.Prefix.Addr().Is6() {
			host = "[" + host + "]"
		}
	}
	if e.Port == 0 {
		return host
	}
	return host + ":" + strconv.Itoa(int(e.Port))
}

// ParseEndpoint parses "host", "IP", "CIDR", each optionally followed by
// ":port", or ":port" alone. IPv6 addresses and ranges take a port only
// inside brackets: "[fd00::/8]:443".
func ParseEndpoint(s string) (Endpoint, error) {
	bad := func(format string, args ...any) (Endpoint, error) {
		return Endpoint{}, fmt.Errorf("got %q, %s", s, fmt.Sprintf(format, args...))
	}
	const forms = `expected a host name, IP address or CIDR range, optionally followed by ":port", or ":port" alone`
	host, port := s, ""
	switch {
	case s == "":
		return bad("%s", forms)
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return bad(`expected "]" after the IPv6 address, as in "[fd00::1]:443"`)
		}
		host, port = s[1:end], s[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return bad(`expected ":port" after "]", as in "[fd00::1]:443"`)
		}
		port = strings.TrimPrefix(port, ":")
		if port == "" && strings.HasSuffix(s, ":") {
			return bad("expected a port number after ':'")
		}
		if !strings.Contains(host, ":") {
			return bad("brackets are only for IPv6 addresses; write an IPv4 address or host name without them")
		}
	case strings.Count(s, ":") == 1:
		i := strings.IndexByte(s, ':')
		host, port = s[:i], s[i+1:]
		if port == "" {
			return bad("expected a port number after ':'")
		}
	}
	var e Endpoint
	if port != "" {
		p, err := parsePort(port)
		if err != nil {
			return bad("%v", err)
		}
		e.Port = p
	}
	if host == "" {
		if port == "" {
			return bad("%s", forms)
		}
		return e, nil
	}
	// expected names the host part only when there is more to s.
	expected := func(what string) (Endpoint, error) {
		if host == s {
			return bad("expected %s", what)
		}
		return bad("expected %q to be %s", host, what)
	}
	if strings.Contains(host, "/") {
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return expected("a CIDR range such as 10.0.0.0/8 or fd00::/8")
		}
		if m := p.Masked(); m != p {
			return bad("which has bits set after the prefix length; expected %q", strings.Replace(s, host, m.String(), 1))
		}
		e.Prefix = p
		return e, nil
	}
	if strings.Contains(host, ":") {
		a, err := netip.ParseAddr(host)
		if err != nil {
			return expected(`an IPv6 address (with a port: "[address]:port")`)
		}
		if a.Zone() != "" {
			return bad("IPv6 zones such as %q are not supported", "%"+a.Zone())
		}
		e.Prefix = netip.PrefixFrom(a, a.BitLen())
		return e, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		e.Prefix = netip.PrefixFrom(a, a.BitLen())
		return e, nil
	}
	if looksNumeric(host) {
		return expected("a valid IPv4 address")
	}
	if err := checkHostName(host); err != nil {
		return bad("%v", err)
	}
	e.Host = host
	return e, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || s[0] == '+' || s[0] == '0' {
		return 0, fmt.Errorf("port %q: expected a port number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// looksNumeric reports whether every dot-separated part is a number, which
// makes the string a botched IPv4 address rather than a host name.
func looksNumeric(s string) bool {
	for _, part := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return false
			}
		}
	}
	return true
}

// checkHostName accepts DNS names as resolvers see them: labels of letters,
// digits, '-' and '_' (service records use it), one optional trailing dot.
func checkHostName(s string) error {
	name := strings.TrimSuffix(s, ".")
	if name == "" {
		return errors.New("expected a host name")
	}
	if len(name) > 253 {
		return fmt.Errorf("host name is %d characters long; expected at most 253", len(name))
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return fmt.Errorf("host name %q has an empty part between dots", s)
		}
		if len(label) > 63 {
			return fmt.Errorf("host name part %q is longer than 63 characters", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("host name %q contains %q; expected letters, digits, '-', '_' and '.'", s, string(rune(c)))
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host name part %q starts or ends with '-'", label)
		}
	}
	return nil
}

// checkDNSPattern accepts a DNS name, optionally prefixed with "*." to select
// every name below it.
func checkDNSPattern(s string) error {
	name := strings.TrimPrefix(s, "*.")
	if strings.Contains(name, "*") {
		return fmt.Errorf(`got %q, expected a DNS name, optionally starting with "*." to match every name below it`, s)
	}
	if _, err := netip.ParseAddr(name); err == nil || looksNumeric(name) {
		return fmt.Errorf("got %q, expected a DNS name; addresses are never looked up in DNS", s)
	}
	if err := checkHostName(name); err != nil {
		return fmt.Errorf("got %q, %v", s, err)
	}
	return nil
}

// ParseDuration parses a Go duration that must be positive.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf(`got %q, expected a duration such as "90s", "5m" or "1h30m"`, s)
	}
	if d <= 0 {
		return 0, fmt.Errorf(`got %q, expected a duration greater than zero, such as "90s"`, s)
	}
	return d, nil
}

// checkAgentAddress accepts the addresses agentclient.Dial understands,
// restricted to the explicit forms so a typo cannot turn into a host name.
func checkAgentAddress(s string) error {
	switch {
	case strings.HasPrefix(s, "unix:"):
		if strings.TrimPrefix(s, "unix:") == "" {
			return fmt.Errorf(`got %q, expected a socket path after "unix:", such as "unix:/run/remocal.sock"`, s)
		}
		return nil
	case strings.HasPrefix(s, "tcp:"):
		host, port, err := net.SplitHostPort(strings.TrimPrefix(s, "tcp:"))
		if err != nil || host == "" {
			return fmt.Errorf(`got %q, expected "tcp:HOST:PORT", such as "tcp:127.0.0.1:7878" or "tcp:[::1]:7878"`, s)
		}
		if _, err := parsePort(port); err != nil {
			return fmt.Errorf("got %q, %v", s, err)
		}
		return nil
	}
	return fmt.Errorf(`got %q, expected "unix:PATH" or "tcp:HOST:PORT"`, s)
}

// checkPathRule accepts an absolute, clean path, in which '*' matches within
// one component and a "**" component matches any number of components.
func checkPathRule(s string) error {
	if !strings.HasPrefix(s, "/") {
		return fmt.Errorf("got %q, expected an absolute path starting with '/'", s)
	}
	trimmed := s
	if len(trimmed) > 1 {
		trimmed = strings.TrimSuffix(trimmed, "/")
	}
	if c := path.Clean(trimmed); c != trimmed {
		return fmt.Errorf("got %q, expected a clean path such as %q", s, c)
	}
	for _, comp := range strings.Split(trimmed, "/") {
		if strings.Contains(comp, "**") && comp != "**" {
			return fmt.Errorf(`got %q, "**" must be a whole path component, as in "/home/**/.cache"`, s)
		}
	}
	if strings.ContainsRune(s, 0) {
		return fmt.Errorf("got %q, a path cannot contain a NUL byte", s)
	}
	return nil
}

// checkExecutableName accepts a bare program name, which is what the
// interposition layer compares against.
func checkExecutableName(s string) error {
	if s == "" || strings.ContainsAny(s, "/\x00") {
		return fmt.Errorf("got %q, expected an executable's file name without a directory, such as %q", s, "make")
	}
	return nil
}

// checkEnvName accepts any name the kernel can carry in an environment.
func checkEnvName(s string) error {
	if s == "" || strings.ContainsAny(s, "=\x00") {
		return fmt.Errorf("got %q, expected an environment variable name (non-empty, without '=')", s)
	}
	return nil
}
