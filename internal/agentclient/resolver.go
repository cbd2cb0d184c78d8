package agentclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// Resolver resolves names as the target would: its /etc/hosts first, then
// its /etc/resolv.conf nameservers with its search list and ndots, queried
// from inside the target's network through the agent. Programs run by the
// interposition layer get the same effect from their own resolver; this is
// for Go callers such as the demo and tests.
type Resolver struct {
	c     *Client
	hosts map[string][]netip.Addr
	conf  resolvConf
	// TCP queries over TCP (like resolv.conf's use-vc) instead of UDP.
	TCP bool
}

type resolvConf struct {
	nameservers []netip.Addr
	search      []string
	ndots       int
	useVC       bool
}

// Resolver reads the target's resolver files.
func (c *Client) Resolver(ctx context.Context) (*Resolver, error) {
	r := &Resolver{c: c, hosts: map[string][]netip.Addr{}}
	hosts, err := c.ReadFile(ctx, "/etc/hosts")
	if err != nil && !IsNotExist(err) {
		return nil, fmt.Errorf("read the target's /etc/hosts: %w", err)
	}
	r.hosts = parseHosts(hosts)
	rc, err := c.ReadFile(ctx, "/etc/resolv.conf")
	if err != nil && !IsNotExist(err) {
		return nil, fmt.Errorf("read the target's /etc/resolv.conf: %w", err)
	}
	r.conf = parseResolvConf(rc)
	r.TCP = r.conf.useVC
	return r, nil
}

// Nameservers returns the target's nameservers.
func (r *Resolver) Nameservers() []netip.Addr { return r.conf.nameservers }

// Search returns the target's search domains.
func (r *Resolver) Search() []string { return r.conf.search }

func parseHosts(data []byte) map[string][]netip.Addr {
	hosts := map[string][]netip.Addr{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		addr, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		for _, name := range f[1:] {
			key := strings.ToLower(strings.TrimSuffix(name, "."))
			hosts[key] = append(hosts[key], addr)
		}
	}
	return hosts
}

func parseResolvConf(data []byte) resolvConf {
	conf := resolvConf{ndots: 1}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 {
				if a, err := netip.ParseAddr(f[1]); err == nil {
					conf.nameservers = append(conf.nameservers, a)
				}
			}
		case "search", "domain":
			conf.search = append([]string(nil), f[1:]...)
		case "options":
			for _, opt := range f[1:] {
				switch {
				case strings.HasPrefix(opt, "ndots:"):
					if n, err := strconv.Atoi(strings.TrimPrefix(opt, "ndots:")); err == nil {
						conf.ndots = min(max(n, 0), 15)
					}
				case opt == "use-vc" || opt == "tcp":
					conf.useVC = true
				}
			}
		}
	}
	return conf
}

// candidates applies the search list the way glibc does.
func (r *Resolver) candidates(name string) []string {
	if strings.HasSuffix(name, ".") {
		return []string{name}
	}
	var withSearch []string
	for _, s := range r.conf.search {
		withSearch = append(withSearch, name+"."+strings.TrimSuffix(s, ".")+".")
	}
	if strings.Count(name, ".") >= r.conf.ndots {
		return append([]string{name + "."}, withSearch...)
	}
	return append(withSearch, name+".")
}

// ErrNotFound is returned for names that neither the hosts file nor DNS
// know.
var ErrNotFound = errors.New("no such host in the target's DNS")

// LookupHost returns the addresses of name.
func (r *Resolver) LookupHost(ctx context.Context, name string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(name); err == nil {
		return []netip.Addr{a}, nil
	}
	if addrs, ok := r.hosts[strings.ToLower(strings.TrimSuffix(name, "."))]; ok {
		return addrs, nil
	}
	if len(r.conf.nameservers) == 0 {
		return nil, fmt.Errorf("lookup %s: the target's /etc/resolv.conf names no nameserver", name)
	}
	var lastErr error = fmt.Errorf("lookup %s: %w", name, ErrNotFound)
	for _, fqdn := range r.candidates(name) {
		for _, ns := range r.conf.nameservers {
			addrs, err := r.query(ctx, ns, fqdn, dnsmessage.TypeA)
			if err != nil {
				if !errors.Is(err, ErrNotFound) {
					lastErr = fmt.Errorf("lookup %s via %s: %w", fqdn, ns, err)
				}
				continue
			}
			return addrs, nil
		}
	}
	return nil, lastErr
}

func (r *Resolver) query(ctx context.Context, ns netip.Addr, fqdn string, qtype dnsmessage.Type) ([]netip.Addr, error) {
	qname, err := dnsmessage.NewName(fqdn)
	if err != nil {
		return nil, err
	}
	id := uint16(r.c.nextID.Add(1))
	msg := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: qname, Type: qtype, Class: dnsmessage.ClassINET}},
	}
	packed, err := msg.Pack()
	if err != nil {
		return nil, err
	}
	network := "udp"
	if r.TCP {
		network = "tcp"
	}
	conn, err := r.c.DialContext(ctx, network, netip.AddrPortFrom(ns, 53).String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	answer, err := exchangeDNS(conn, packed, r.TCP)
	if err != nil {
		return nil, err
	}
	var resp dnsmessage.Message
	if err := resp.Unpack(answer); err != nil {
		return nil, fmt.Errorf("malformed DNS answer: %w", err)
	}
	if resp.Header.ID != id {
		return nil, fmt.Errorf("DNS answer for another query (id %d, want %d)", resp.Header.ID, id)
	}
	if resp.Header.RCode == dnsmessage.RCodeNameError {
		return nil, ErrNotFound
	}
	if resp.Header.RCode != dnsmessage.RCodeSuccess {
		return nil, fmt.Errorf("DNS server answered %v", resp.Header.RCode)
	}
	var addrs []netip.Addr
	for _, ans := range resp.Answers {
		switch b := ans.Body.(type) {
		case *dnsmessage.AResource:
			addrs = append(addrs, netip.AddrFrom4(b.A))
		case *dnsmessage.AAAAResource:
			addrs = append(addrs, netip.AddrFrom16(b.AAAA))
		}
	}
	if len(addrs) == 0 {
		return nil, ErrNotFound
	}
	return addrs, nil
}

func exchangeDNS(conn net.Conn, query []byte, tcp bool) ([]byte, error) {
	if !tcp {
		if _, err := conn.Write(query); err != nil {
			return nil, err
		}
		buf := make([]byte, 65535)
		n, err := conn.Read(buf)
		return buf[:n], err
	}
	framed := binary.BigEndian.AppendUint16(nil, uint16(len(query)))
	if _, err := conn.Write(append(framed, query...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err := io.ReadFull(conn, buf)
	return buf, err
}
