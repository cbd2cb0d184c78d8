package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// OutgoingOptions configure where connections go.
type OutgoingOptions struct {
	TCP, UDP        bool
	IgnoreLocalhost bool
	// At most one of Remote and Local is set. Remote: only matching
	// destinations go through the target. Local: matching destinations stay
	// local, the rest go through the target. Entries: IP, CIDR or host
	// name, each with an optional ":port", or ":port" alone; names must be
	// resolved by the caller (Resolve) before use.
	Remote, Local []string
}

// Outgoing decides where a connection goes.
type Outgoing struct {
	tcp, udp, ignoreLocalhost bool
	list                      []destRule
	listIsRemote              bool
	hasList                   bool
}

type destRule struct {
	prefix netip.Prefix // invalid: any address
	port   uint16       // 0: any port
}

// Resolver turns a host name from a rule into addresses, with the target's
// DNS.
type Resolver func(host string) ([]netip.Addr, error)

// NewOutgoing compiles the rules; host names are resolved with resolve
// (which may be nil when no rule names a host).
func NewOutgoing(o OutgoingOptions, resolve Resolver) (*Outgoing, error) {
	if len(o.Remote) > 0 && len(o.Local) > 0 {
		return nil, fmt.Errorf("outgoing filter: give either a remote or a local list, not both")
	}
	out := &Outgoing{tcp: o.TCP, udp: o.UDP, ignoreLocalhost: o.IgnoreLocalhost}
	entries := o.Local
	if len(o.Remote) > 0 {
		entries, out.listIsRemote = o.Remote, true
	}
	out.hasList = len(entries) > 0
	for _, e := range entries {
		rules, err := parseDest(e, resolve)
		if err != nil {
			return nil, fmt.Errorf("outgoing filter entry %q: %w", e, err)
		}
		out.list = append(out.list, rules...)
	}
	return out, nil
}

func parseDest(e string, resolve Resolver) ([]destRule, error) {
	host, port := e, uint16(0)
	// "[v6]:port", "host:port" and ":port" carry a port; a bare IPv6
	// address or prefix has several colons and none.
	if strings.HasPrefix(e, "[") || strings.Count(e, ":") == 1 {
		h, p, err := splitHostPort(e)
		if err != nil {
			return nil, err
		}
		host, port = h, p
	}
	if host == "" {
		return []destRule{{port: port}}, nil
	}
	if pfx, err := netip.ParsePrefix(host); err == nil {
		return []destRule{{prefix: pfx.Masked(), port: port}}, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []destRule{{prefix: netip.PrefixFrom(a, a.BitLen()), port: port}}, nil
	}
	if resolve == nil {
		return nil, fmt.Errorf("host name %q needs DNS to resolve", host)
	}
	addrs, err := resolve(host)
	if err != nil {
		return nil, fmt.Errorf("resolve %q with the target's DNS: %w", host, err)
	}
	var rules []destRule
	for _, a := range addrs {
		rules = append(rules, destRule{prefix: netip.PrefixFrom(a, a.BitLen()), port: port})
	}
	return rules, nil
}

func splitHostPort(e string) (string, uint16, error) {
	var host, p string
	if strings.HasPrefix(e, "[") {
		end := strings.Index(e, "]")
		if end < 0 {
			return "", 0, fmt.Errorf("missing ]")
		}
		host, p = e[1:end], strings.TrimPrefix(e[end+1:], ":")
	} else {
		i := strings.LastIndexByte(e, ':')
		host, p = e[:i], e[i+1:]
	}
	if p == "" {
		return host, 0, nil
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return host, uint16(n), nil
}

// Enabled reports whether network ("tcp" or "udp") goes through the target
// at all (before the filter).
func (o *Outgoing) Enabled(network string) bool {
	return (network == "tcp" && o.tcp) || (network == "udp" && o.udp)
}

// Where decides for a connection to dest over network ("tcp" or "udp").
func (o *Outgoing) Where(network string, dest netip.AddrPort) Where {
	addr := dest.Addr().Unmap()
	if (network == "tcp" && !o.tcp) || (network == "udp" && !o.udp) {
		return Local
	}
	if addr.IsUnspecified() || (o.ignoreLocalhost && addr.IsLoopback()) {
		return Local
	}
	if !o.hasList {
		return Remote
	}
	matched := false
	for _, r := range o.list {
		if (!r.prefix.IsValid() || r.prefix.Contains(addr)) && (r.port == 0 || r.port == dest.Port()) {
			matched = true
			break
		}
	}
	if matched == o.listIsRemote {
		return Remote
	}
	return Local
}

// DefaultLocalProcesses are programs that must run as they are: build
// tools and debuggers in the supervised tree (so `go run .` and `dlv debug`
// work under remocal), whose files and connections are the developer's.
var DefaultLocalProcesses = []string{
	"go", "compile", "link", "asm", "cgo", "vet", "gcc", "cc", "cc1", "cc1plus", "as", "ld", "ld.bfd", "ld.gold",
	"collect2", "clang", "clang++", "lld", "git", "dlv", "debugserver", "gdb", "lldb", "lldb-server",
	"rustc", "cargo", "javac", "make", "cmake", "ninja",
}

// Processes decides which executables are never intercepted.
type Processes struct{ local map[string]bool }

// NewProcesses combines the defaults with extra names.
func NewProcesses(extra []string) *Processes {
	p := &Processes{local: map[string]bool{}}
	for _, n := range append(append([]string(nil), DefaultLocalProcesses...), extra...) {
		p.local[n] = true
	}
	return p
}

// Local reports whether an executable (by path or name) stays local.
func (p *Processes) Local(exe string) bool {
	if i := strings.LastIndexByte(exe, '/'); i >= 0 {
		exe = exe[i+1:]
	}
	return p.local[exe]
}
