package supervisor

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/remocal/remocal/interpose/internal/rules"
)

// With a DNS filter (network.dns.filter), queries to the target's
// nameserver pass through a splitter instead of a plain relay: each query's
// name decides whether the target's DNS answers it (through the agent) or
// this machine's resolver does (its /etc/hosts and nameservers), in which
// case the splitter builds the answer itself.

const localLookupTimeout = 5 * time.Second

// splitsDNS reports whether connections to dest need the splitter.
func (s *Supervisor) splitsDNS(dest netip.AddrPort) bool {
	return s.cfg.DNSNames != nil && dest.Port() == 53
}

// queryName returns the first question's name and type.
func queryName(msg []byte) (string, dnsmessage.Type, bool) {
	var p dnsmessage.Parser
	if _, err := p.Start(msg); err != nil {
		return "", 0, false
	}
	q, err := p.Question()
	if err != nil {
		return "", 0, false
	}
	return q.Name.String(), q.Type, true
}

// localAnswer resolves a query on this machine and builds the response.
func (s *Supervisor) localAnswer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	hdr, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	resp := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: hdr.ID, Response: true, RecursionDesired: hdr.RecursionDesired, RecursionAvailable: true},
		Questions: []dnsmessage.Question{q},
	}
	network := ""
	switch q.Type {
	case dnsmessage.TypeA:
		network = "ip4"
	case dnsmessage.TypeAAAA:
		network = "ip6"
	}
	if network != "" {
		ctx, cancel := context.WithTimeout(s.ctx, localLookupTimeout)
		ips, err := net.DefaultResolver.LookupNetIP(ctx, network, q.Name.String())
		cancel()
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			resp.Header.RCode = dnsmessage.RCodeNameError
		case err != nil:
			resp.Header.RCode = dnsmessage.RCodeServerFailure
		}
		for _, ip := range ips {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 30}
			if ip.Is4() || ip.Is4In6() {
				rh.Type = dnsmessage.TypeA
				resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AResource{A: ip.Unmap().As4()}})
			} else {
				rh.Type = dnsmessage.TypeAAAA
				resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AAAAResource{AAAA: ip.As16()}})
			}
		}
	}
	return resp.Pack()
}

// answer routes one query: this machine's resolver or the target's.
func (s *Supervisor) isLocalQuery(query []byte) bool {
	name, _, ok := queryName(query)
	return ok && s.cfg.DNSNames.Where(name) == rules.Local
}

// splitDNSOverTCP serves DNS over TCP (length-prefixed messages) between the
// program's connection and the target's nameserver.
func (s *Supervisor) splitDNSOverTCP(program, target net.Conn) {
	defer program.Close()
	defer target.Close()
	for {
		query, err := readTCPMessage(program)
		if err != nil {
			return
		}
		var resp []byte
		if s.isLocalQuery(query) {
			resp, err = s.localAnswer(query)
		} else {
			if err = writeTCPMessage(target, query); err == nil {
				resp, err = readTCPMessage(target)
			}
		}
		if err != nil || writeTCPMessage(program, resp) != nil {
			return
		}
	}
}

func readTCPMessage(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err := io.ReadFull(r, msg)
	return msg, err
}

func writeTCPMessage(w io.Writer, msg []byte) error {
	_, err := w.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...))
	return err
}
