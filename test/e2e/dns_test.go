package e2e

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/test/envtest"
)

// laptopDNS is a DNS server on this (isolated) machine's loopback that
// knows one name the target's DNS does not.
func laptopDNS(t *testing.T) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:53")
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(); l.Close() })
	answer := func(q []byte) []byte {
		var p dnsmessage.Parser
		hdr, err := p.Start(q)
		if err != nil {
			return nil
		}
		question, err := p.Question()
		if err != nil {
			return nil
		}
		m := dnsmessage.Message{Header: dnsmessage.Header{ID: hdr.ID, Response: true}, Questions: []dnsmessage.Question{question}}
		if strings.EqualFold(question.Name.String(), "laptop-only.example.") && question.Type == dnsmessage.TypeA {
			m.Answers = []dnsmessage.Resource{{
				Header: dnsmessage.ResourceHeader{Name: question.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 5},
				Body:   &dnsmessage.AResource{A: [4]byte{192, 0, 2, 55}},
			}}
		} else {
			m.Header.RCode = dnsmessage.RCodeNameError
		}
		b, _ := m.Pack()
		return b
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(answer(buf[:n]), from)
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					q, err := readDNSTCP(c)
					if err != nil {
						return
					}
					a := answer(q)
					c.Write(append([]byte{byte(len(a) >> 8), byte(len(a))}, a...))
				}
			}()
		}
	}()
}

func readDNSTCP(c net.Conn) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, int(l[0])<<8|int(l[1]))
	_, err := io.ReadFull(c, msg)
	return msg, err
}

// TestDNSFilterResolvesListedNamesLocally: with network.dns.filter, names
// on the local list are resolved by this machine's resolver, all others by
// the target's. "This machine" is simulated by running remocal in a mount
// namespace whose /etc/resolv.conf points at laptopDNS.
func TestDNSFilterResolvesListedNamesLocally(t *testing.T) {
	env := envtest.New(t)
	laptopDNS(t)
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644)
	cfg := filepath.Join(dir, "dns.json")
	os.WriteFile(cfg, []byte(`{"network": {"dns": {"filter": {"local": ["laptop-only.example", "*.corp.test"]}}, "incoming": {"mode": "off"}}}`), 0o644)

	cmd := exec.CommandContext(context.Background(), "unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /etc/resolv.conf && shift && exec "$@"`, "sh", resolv,
		built(t, "remocal"), "exec", "--target", "pid/"+strconv.Itoa(env.App.PID), "-f", cfg, "--",
		built(t, "probe"), "resolve=laptop-only.example", "resolve=redis")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	t.Logf("output:\n%s", out)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	mustContain(t, "output", string(out),
		"resolve laptop-only.example: 192.0.2.55",   // this machine's resolver
		"resolve redis: "+localenv.RedisIP.String()) // the target's, as before
}
