package redirect

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/netns"
)

// op is one nf_tables message of a batch, with a description that turns a
// bare errno from the kernel into an error a person can act on.
type op struct {
	msg  netlink.Message
	what string
}

// dial opens a netfilter netlink socket inside the namespace. The socket
// stays bound to that namespace for its whole life, whatever thread later
// uses it.
func dial(ns *netns.NS) (*netlink.Conn, error) {
	// Extended acknowledgements stay off: nf_tables fills them with an
	// attribute offset and rarely a message, which only clutters errors.
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns.Fd()})
	if err != nil {
		return nil, fmt.Errorf("redirect: open netfilter netlink socket in %s: %w", ns.Path(), err)
	}
	// Without this, every error reply carries a copy of the rejected
	// message, and a large rejected batch could overflow the receive buffer
	// before its acknowledgements are read. Best effort: it only saves space.
	_ = conn.SetOption(netlink.CapAcknowledge, true)
	return conn, nil
}

// nftMsg builds an nf_tables message for the inet family. Integers inside
// nf_tables attributes are big-endian (unlike the netlink framing), which is
// why the attribute values are encoded with be32 and be16.
func nftMsg(typ uint16, flags netlink.HeaderFlags, attrs []netlink.Attribute) (netlink.Message, error) {
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return netlink.Message{}, err
	}
	return netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ),
			Flags: netlink.Request | flags,
		},
		Data: append(nfgenmsg(unix.NFPROTO_INET, 0), data...),
	}, nil
}

// nfgenmsg is the fixed header of every nfnetlink message; resID is
// big-endian and only meaningful for batch delimiters.
func nfgenmsg(family uint8, resID uint16) []byte {
	return []byte{family, unix.NFNETLINK_V0, byte(resID >> 8), byte(resID)}
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func mustOp(msg netlink.Message, err error, what string) op {
	if err != nil {
		// Only reachable with attributes too large for netlink, which fixed
		// names and six expressions can never produce.
		panic(fmt.Sprintf("redirect: marshal %s: %v", what, err))
	}
	return op{msg: msg, what: what}
}

func (t *Table) newTableOp() op {
	// NLM_F_EXCL: never adopt an existing table (see Open).
	msg, err := nftMsg(unix.NFT_MSG_NEWTABLE, netlink.Acknowledge|netlink.Create|netlink.Excl, []netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: cstr(t.name)},
		{Type: unix.NFTA_TABLE_FLAGS, Data: be32(tableFlagOwner)},
	})
	return mustOp(msg, err, "create table inet "+t.name+" with owner flag")
}

func (t *Table) newChainOp() op {
	return t.baseChainOp(chainName, "nat", unix.NF_INET_PRE_ROUTING, priorityDstNAT, "type nat hook prerouting priority dstnat")
}

func (t *Table) newGuardChainOp() op {
	return t.baseChainOp(guardChainName, "filter", unix.NF_INET_LOCAL_IN, priorityFilter, "type filter hook input priority filter")
}

func (t *Table) baseChainOp(name, typ string, hooknum uint32, priority int32, desc string) op {
	hook, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_HOOK_HOOKNUM, Data: be32(hooknum)},
		{Type: unix.NFTA_HOOK_PRIORITY, Data: be32(uint32(priority))}, // two's complement
	})
	var msg netlink.Message
	if err == nil {
		msg, err = nftMsg(unix.NFT_MSG_NEWCHAIN, netlink.Acknowledge|netlink.Create|netlink.Excl, []netlink.Attribute{
			{Type: unix.NFTA_CHAIN_TABLE, Data: cstr(t.name)},
			{Type: unix.NFTA_CHAIN_NAME, Data: cstr(name)},
			{Type: unix.NLA_F_NESTED | unix.NFTA_CHAIN_HOOK, Data: hook},
			{Type: unix.NFTA_CHAIN_TYPE, Data: cstr(typ)},
		})
	}
	return mustOp(msg, err, "create chain "+name+" ("+desc+")")
}

func (t *Table) flushChainOp() op { return t.flushOp(chainName) }

func (t *Table) flushOp(chain string) op {
	// DELRULE without a handle deletes every rule of the chain.
	msg, err := nftMsg(unix.NFT_MSG_DELRULE, netlink.Acknowledge, []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstr(t.name)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstr(chain)},
	})
	return mustOp(msg, err, "flush chain "+chain)
}

func (t *Table) newRuleOp(r Rule) (op, error) {
	o, err := t.ruleOp(chainName, ruleExprs(r), fmt.Sprintf("add rule tcp dport %d redirect to :%d", r.Port, r.ToPort))
	if err != nil {
		return op{}, fmt.Errorf("marshal rule %d->%d: %w", r.Port, r.ToPort, err)
	}
	return o, nil
}

func (t *Table) ruleOp(chain string, exprs []expr.Any, what string) (op, error) {
	elems := make([]netlink.Attribute, len(exprs))
	for i, e := range exprs {
		b, err := expr.Marshal(unix.NFPROTO_INET, e)
		if err != nil {
			return op{}, err
		}
		elems[i] = netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: b}
	}
	list, err := netlink.MarshalAttributes(elems)
	if err != nil {
		return op{}, err
	}
	// NLM_F_APPEND keeps the kernel's order equal to the caller's; without it
	// each rule would be inserted at the head.
	msg, err := nftMsg(unix.NFT_MSG_NEWRULE, netlink.Acknowledge|netlink.Create|netlink.Append, []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstr(t.name)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstr(chain)},
		{Type: unix.NLA_F_NESTED | unix.NFTA_RULE_EXPRESSIONS, Data: list},
	})
	if err != nil {
		return op{}, err
	}
	return op{msg: msg, what: what}, nil
}

func (t *Table) delTableOp() op {
	msg, err := nftMsg(unix.NFT_MSG_DELTABLE, netlink.Acknowledge, []netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: cstr(t.name)},
	})
	return mustOp(msg, err, "delete table inet "+t.name)
}

// batchDelimiter is NFNL_MSG_BATCH_BEGIN or _END. nf_tables applies what is
// between them as one transaction, which is what makes Sync atomic.
func batchDelimiter(typ uint16) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request},
		Data:   nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES),
	}
}

func (t *Table) exchange(ctx context.Context, ops []op) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.exchangeLocked(ctx, ops)
}

// exchangeLocked sends ops as one batch and waits for the acknowledgement of
// every one of them.
//
// Every op asks for an ack, and nfnetlink answers each such message exactly
// once, with success or its errno, even after an earlier message of the batch
// failed (it keeps going to report all errors, then aborts the whole batch).
// An error about the BATCH_BEGIN message itself (no CAP_NET_ADMIN, out of
// memory) is the only answer the batch gets. Replies are matched by sequence
// number, so replies to an earlier batch that timed out are skipped rather
// than mistaken for this one's.
func (t *Table) exchangeLocked(ctx context.Context, ops []op) error {
	if t.conn == nil {
		return errClosed
	}
	deadline := time.Now().Add(ackTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := t.conn.SetReadDeadline(deadline); err != nil {
		return fmt.Errorf("set netlink read deadline: %w", err)
	}
	// Cancelling ctx interrupts a pending Receive by moving the deadline
	// into the past; the deferred wait makes sure that cannot happen later,
	// during another batch.
	conn := t.conn
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = conn.SetReadDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired
		}
	}()

	msgs := make([]netlink.Message, 0, len(ops)+2)
	msgs = append(msgs, batchDelimiter(unix.NFNL_MSG_BATCH_BEGIN))
	for _, o := range ops {
		msgs = append(msgs, o.msg)
	}
	msgs = append(msgs, batchDelimiter(unix.NFNL_MSG_BATCH_END))
	// SendMessages writes the whole batch with a single sendmsg, as
	// nfnetlink requires, and fills in the sequence numbers.
	sent, err := conn.SendMessages(msgs)
	if err != nil {
		return fmt.Errorf("send nftables batch: %w", err)
	}
	begin := sent[0].Header.Sequence
	pending := make(map[uint32]int, len(ops))
	for i := range ops {
		pending[sent[i+1].Header.Sequence] = i
	}

	var errs []error
	for len(pending) > 0 {
		replies, err := conn.Receive()
		if err != nil {
			var oe *netlink.OpError
			if errors.As(err, &oe) && oe.Sequence != 0 {
				if oe.Sequence == begin {
					return fmt.Errorf("kernel rejected nftables batch: %w", err)
				}
				if i, ok := pending[oe.Sequence]; ok {
					delete(pending, oe.Sequence)
					errs = append(errs, fmt.Errorf("%s: %w", ops[i].what, err))
				}
				continue
			}
			if ctxErr := ctx.Err(); ctxErr != nil {
				return fmt.Errorf("waiting for nftables acknowledgements: %w", ctxErr)
			}
			return fmt.Errorf("waiting for nftables acknowledgements (%d of %d outstanding): %w", len(pending), len(ops), err)
		}
		for _, m := range replies {
			if m.Header.Type == netlink.Error {
				delete(pending, m.Header.Sequence)
			}
		}
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("kernel rejected nftables batch, nothing applied: %w", errs[0])
	}
	// Later errors are usually consequences of the first (a chain in a
	// table that could not be created, say), so only the first is spelled
	// out.
	return fmt.Errorf("kernel rejected nftables batch, nothing applied: %w (and %d more)", errs[0], len(errs)-1)
}

// Tables lists the names of inet-family tables in a namespace, for
// diagnostics and tests: a leftover remocal table there means an agent is
// (or is still) active.
func Tables(ns *netns.NS) ([]string, error) {
	infos, err := listTables(ns)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(infos))
	for i, ti := range infos {
		names[i] = ti.name
	}
	return names, nil
}

// tableInfo is what a GETTABLE dump says about one table.
type tableInfo struct {
	name     string
	flags    uint32
	owner    uint32 // netlink port ID of the owning socket
	hasOwner bool
}

// listTables dumps the inet tables over a short-lived socket of its own, so
// that it works for any namespace, without an owned Table.
func listTables(ns *netns.NS) ([]tableInfo, error) {
	if ns == nil {
		return nil, errors.New("redirect: list tables: no network namespace given")
	}
	conn, err := dial(ns)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(ackTimeout)); err != nil {
		return nil, fmt.Errorf("redirect: list tables in %s: %w", ns.Path(), err)
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETTABLE),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: nfgenmsg(unix.NFPROTO_INET, 0),
	}
	// A dump racing with a ruleset change is flagged as interrupted; it is
	// then repeated, since a half-old, half-new list would be misleading.
	for attempt := 1; ; attempt++ {
		replies, err := conn.Execute(req)
		if err != nil {
			return nil, fmt.Errorf("redirect: list tables in %s: %w", ns.Path(), err)
		}
		var infos []tableInfo
		interrupted := false
		for _, m := range replies {
			interrupted = interrupted || m.Header.Flags&netlink.DumpInterrupted != 0
			if m.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWTABLE) {
				continue
			}
			ti, err := parseTable(m.Data)
			if err != nil {
				return nil, fmt.Errorf("redirect: list tables in %s: %w", ns.Path(), err)
			}
			infos = append(infos, ti)
		}
		if !interrupted || attempt == 3 {
			return infos, nil
		}
	}
}

func parseTable(b []byte) (tableInfo, error) {
	var ti tableInfo
	if len(b) < 4 {
		return ti, errors.New("short nf_tables table message")
	}
	ad, err := netlink.NewAttributeDecoder(b[4:])
	if err != nil {
		return ti, fmt.Errorf("decode table attributes: %w", err)
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_TABLE_NAME:
			ti.name = ad.String()
		case unix.NFTA_TABLE_FLAGS:
			ti.flags = ad.Uint32()
		case attrTableOwner:
			ti.owner = ad.Uint32()
			ti.hasOwner = true
		}
	}
	if err := ad.Err(); err != nil {
		return ti, fmt.Errorf("decode table attributes: %w", err)
	}
	return ti, nil
}
