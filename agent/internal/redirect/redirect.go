// Package redirect steers incoming TCP connections inside a target's network
// namespace to the agent.
//
// The rules live in an nftables table created with the owner flag
// (NFT_TABLE_F_OWNER, Linux 5.12+). The kernel ties such a table to the
// netlink socket that created it and deletes it when that socket closes, so
// the redirect disappears together with the agent even when the agent is
// SIGKILLed or the node runs out of memory: there is no cleanup step that can
// be skipped, and no leftover rule can keep diverting a pod's traffic to a
// dead port.
//
// The same ownership means only the creating socket may change the table
// afterwards, so a Table keeps one netlink socket for its whole life and
// speaks nf_tables over it directly. (github.com/google/nftables cannot be
// used for the writes: as of v0.3.0 it always sends table flags 0.)
package redirect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/netns"
)

// Rule redirects new TCP connections arriving for Port (any local address,
// IPv4 and IPv6) to ToPort on the same host: nft equivalent
// `meta l4proto tcp tcp dport <Port> redirect to :<ToPort>`.
//
// Only new connections are affected: conntrack keeps established ones on the
// destination they started with, so changing the rules never breaks a
// connection the application already serves.
type Rule struct{ Port, ToPort uint16 }

// TablePrefix is the prefix every table name must carry, so that an operator
// listing a pod's ruleset can tell remocal's tables from everyone else's.
const TablePrefix = "remocal"

// ErrTableExists is wrapped by Open's error when the name is taken, which
// usually means another agent is already serving the same namespace.
var ErrTableExists = errors.New("nftables table already exists")

const (
	// chainName is the base chain of the redirect rules.
	chainName = "redirect"
	// guardChainName is the base chain that keeps the redirect target ports
	// reachable only through a redirect (Guard); created on first use.
	guardChainName = "guard"

	// ackTimeout bounds the wait for the kernel's acknowledgements. The
	// kernel answers a batch synchronously while processing it, so this only
	// fires if something is badly wrong; it exists so that a Sync can never
	// hang the subscribe path forever.
	ackTimeout = 5 * time.Second

	// maxNameLen is NFT_NAME_MAXLEN (256) minus the terminating NUL.
	maxNameLen = 255

	// Values from linux/netfilter/nf_tables.h that golang.org/x/sys/unix
	// does not define.
	tableFlagOwner = 0x2 // NFT_TABLE_F_OWNER
	attrTableOwner = 7   // NFTA_TABLE_OWNER

	// priorityDstNAT is nft's "dstnat" priority: after conntrack (-200) has
	// seen the packet, which NAT needs.
	priorityDstNAT = -100
	// priorityFilter is nft's "filter" priority, after NAT: the guard sees
	// packets with their redirect applied.
	priorityFilter = 0
)

// Table is an owned nftables table in one network namespace. It is safe for
// concurrent use: every operation is one batch, and batches are serialised so
// that acknowledgements cannot be attributed to the wrong caller.
type Table struct {
	name   string
	nsPath string

	mu    sync.Mutex
	conn  *netlink.Conn // nil once closed
	guard bool          // the guard chain exists
}

// Open creates the owned table (name must start with "remocal") with one
// chain: type nat, hook prerouting, priority dstnat (-100). It fails with an
// error wrapping ErrTableExists if a table of that name already exists.
//
// Refusing an existing name, instead of adopting or replacing it, is
// deliberate: owned tables cannot outlive their socket, so an existing one
// belongs either to a live agent or to someone else's configuration, and
// fighting over its rules would misroute the pod's traffic.
//
// ctx bounds the creation only; the Table outlives it.
func Open(ctx context.Context, ns *netns.NS, table string) (*Table, error) {
	if ns == nil {
		// NetNS 0 would silently mean "this process's namespace", which on a
		// node is the host's: refuse rather than redirect host traffic.
		return nil, errors.New("redirect: open table: no network namespace given")
	}
	if err := checkName(table); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redirect: open table %s: %w", table, err)
	}
	conn, err := dial(ns)
	if err != nil {
		return nil, err
	}
	t := &Table{name: table, nsPath: ns.Path(), conn: conn}
	err = t.exchange(ctx, []op{t.newTableOp(), t.newChainOp()})
	if err == nil {
		return t, nil
	}
	// Closing the socket is the whole cleanup: had any part of the batch been
	// applied, the kernel would drop it along with the socket.
	_ = conn.Close()
	switch {
	case errors.Is(err, unix.EEXIST):
		return nil, fmt.Errorf("redirect: table inet %s in %s: %w (is another remocal agent running there?): %w",
			table, ns.Path(), ErrTableExists, err)
	case errors.Is(err, unix.EPERM) && tableExists(ns, table):
		// The kernel answers EPERM, not EEXIST, when the existing table is
		// owned by another socket.
		return nil, fmt.Errorf("redirect: table inet %s in %s: %w and is owned by another process (is another remocal agent running there?): %w",
			table, ns.Path(), ErrTableExists, err)
	case errors.Is(err, unix.EOPNOTSUPP):
		return nil, fmt.Errorf("redirect: create table inet %s in %s: the kernel rejected the owner flag (needs Linux 5.12 or later): %w",
			table, ns.Path(), err)
	}
	return nil, fmt.Errorf("redirect: open table inet %s in %s: %w", table, ns.Path(), err)
}

// Sync atomically replaces the chain's rules with exactly these rules (one
// batch: flush chain, add each rule).
//
// It is level-based, callers pass the full desired set every time, so that
// a failed or timed-out Sync is repaired by the next one without the caller
// tracking what the kernel may have applied. The batch is all-or-nothing in
// the kernel, so no packet ever sees a half-updated chain. Empty set = no
// rules.
func (t *Table) Sync(rules []Rule) error {
	ops := make([]op, 0, len(rules)+1)
	ops = append(ops, t.flushChainOp())
	target := make(map[uint16]uint16, len(rules))
	for _, r := range rules {
		if r.Port == 0 || r.ToPort == 0 {
			return fmt.Errorf("redirect: sync table %s: invalid rule %d->%d: ports must be non-zero", t.name, r.Port, r.ToPort)
		}
		if to, dup := target[r.Port]; dup {
			if to != r.ToPort {
				// The kernel would silently let the first rule win.
				return fmt.Errorf("redirect: sync table %s: port %d redirected to both %d and %d", t.name, r.Port, to, r.ToPort)
			}
			continue
		}
		target[r.Port] = r.ToPort
		o, err := t.newRuleOp(r)
		if err != nil {
			return fmt.Errorf("redirect: sync table %s: %w", t.name, err)
		}
		ops = append(ops, o)
	}
	if err := t.exchange(context.Background(), ops); err != nil {
		return fmt.Errorf("redirect: sync table %s in %s: %w", t.name, t.nsPath, err)
	}
	return nil
}

// Guard makes each of ports reachable only by connections that a Rule
// redirected there: a TCP packet for one of them whose connection was
// originally addressed to that very port (it came straight to the agent's
// listener, from another pod or from inside the target's namespace) is
// dropped, in nft terms
// `meta l4proto tcp tcp dport <port> ct original proto-dst <port> drop`
// in a chain of type filter, hook input.
//
// Without it anything that can reach the target could talk to the agent's
// listener directly, where the agent has no subscription to serve the
// connection with. Like Sync it is level-based: the ports replace the
// previous set, and no ports means no guard rules.
func (t *Table) Guard(ports ...uint16) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ops []op
	if !t.guard {
		ops = append(ops, t.newGuardChainOp())
	} else {
		ops = append(ops, t.flushOp(guardChainName))
	}
	for _, p := range ports {
		if p == 0 {
			return fmt.Errorf("redirect: guard table %s: port must be non-zero", t.name)
		}
		o, err := t.ruleOp(guardChainName, guardExprs(p), fmt.Sprintf("add rule tcp dport %d ct original proto-dst %d drop", p, p))
		if err != nil {
			return fmt.Errorf("redirect: guard table %s: marshal rule for port %d: %w", t.name, p, err)
		}
		ops = append(ops, o)
	}
	if err := t.exchangeLocked(context.Background(), ops); err != nil {
		return fmt.Errorf("redirect: guard table %s in %s: %w", t.name, t.nsPath, err)
	}
	t.guard = true
	return nil
}

// Close deletes the table and closes the socket. It is idempotent and safe
// after failures: even if the delete cannot be sent, closing the socket makes
// the kernel remove the table.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil {
		return nil
	}
	delErr := t.exchangeLocked(context.Background(), []op{t.delTableOp()})
	closeErr := t.conn.Close()
	t.conn = nil
	if delErr != nil || closeErr != nil {
		return fmt.Errorf("redirect: close table %s in %s: %w", t.name, t.nsPath, errors.Join(delErr, closeErr))
	}
	return nil
}

// Name returns the table's name, for logs.
func (t *Table) Name() string { return t.name }

func checkName(name string) error {
	switch {
	case !strings.HasPrefix(name, TablePrefix):
		return fmt.Errorf("redirect: table name %q must start with %q", name, TablePrefix)
	case len(name) > maxNameLen:
		return fmt.Errorf("redirect: table name %q is longer than %d bytes", name, maxNameLen)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("redirect: table name %q contains a NUL byte", name)
	}
	return nil
}

// tableExists reports whether the namespace has an inet table of that name;
// lookup failures count as "no", as it only refines an error message.
func tableExists(ns *netns.NS, name string) bool {
	infos, err := listTables(ns)
	if err != nil {
		return false
	}
	for _, ti := range infos {
		if ti.name == name {
			return true
		}
	}
	return false
}

// ruleExprs is `meta l4proto tcp tcp dport <Port> redirect to :<ToPort>`,
// expression for expression as nft 1.0 compiles it. The l4proto check must
// come first: in an inet chain the transport header is otherwise anything.
func ruleExprs(r Rule) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(r.Port)},
		&expr.Immediate{Register: 1, Data: be16(r.ToPort)},
		// Older kernels only honour the port register when the flag says so.
		&expr.Redir{RegisterProtoMin: 1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED},
	}
}

// guardExprs is `meta l4proto tcp tcp dport <port> ct original proto-dst
// <port> drop`. In the input hook the destination port is the one after NAT,
// the conntrack original tuple the one the sender chose: equal means nothing
// redirected the connection. Using ct also makes nf_tables enable conntrack
// in the namespace, which SO_ORIGINAL_DST relies on as well.
func guardExprs(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(port)},
		&expr.Ct{Register: 1, Key: expr.CtKeyPROTODST, Direction: 0}, // IP_CT_DIR_ORIGINAL
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(port)},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

func be16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

// errClosed is returned by operations on a closed Table.
var errClosed = fmt.Errorf("table is closed: %w", net.ErrClosed)
