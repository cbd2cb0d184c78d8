package supervisor

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/remocal/remocal/interpose/internal/rules"
)

// FuzzWithUseVC: the served resolv.conf keeps the target's file byte for
// byte (every line of it stays a line), and adds exactly one line, an
// "options use-vc", as its last.
func FuzzWithUseVC(f *testing.F) {
	for _, s := range []string{
		"search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
		"nameserver 10.96.0.10",
		"nameserver 10.96.0.10\r\noptions use-vc\r\n",
		"",
		"\n",
		"# comment only",
		"nameserver fd00::a\nnameserver 10.0.0.2\n\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, conf []byte) {
		out := withUseVC(conf)
		if !bytes.HasPrefix(out, conf) {
			t.Fatalf("withUseVC(%q) = %q drops or changes the target's content", conf, out)
		}
		const line = "options use-vc\n"
		if !bytes.HasSuffix(out, []byte(line)) {
			t.Fatalf("withUseVC(%q) = %q does not end with %q", conf, out, line)
		}
		inLines := strings.Split(strings.TrimSuffix(string(conf), "\n"), "\n")
		outLines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(conf) == 0 {
			inLines = nil
		}
		if len(outLines) != len(inLines)+1 || outLines[len(outLines)-1] != "options use-vc" {
			t.Fatalf("withUseVC(%q) = %q: %d lines from %d", conf, out, len(outLines), len(inLines))
		}
		for i, l := range inLines {
			if outLines[i] != l {
				t.Fatalf("withUseVC(%q): line %d %q became %q", conf, i, l, outLines[i])
			}
		}
	})
}

// FuzzNsswitchWithDNS: host lookups always end up as exactly "files dns",
// on exactly one hosts: line, and every other line of the local file stays.
func FuzzNsswitchWithDNS(f *testing.F) {
	for _, s := range []string{
		"passwd:         files systemd\nhosts:          files mdns4_minimal [NOTFOUND=return] dns myhostname\nnetworks:       files\n",
		"hosts: files resolve [!UNAVAIL=return] dns\n",
		"",
		"\n\npasswd: files\n",
		" hosts:\tdns\nhosts: files\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, local []byte) {
		out := string(nsswitchWithDNS(local))
		if !strings.HasSuffix(out, "\n") {
			t.Fatalf("nsswitchWithDNS(%q) = %q lacks a final newline", local, out)
		}
		hostsLines := 0
		for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "hosts:" {
				hostsLines++
				if l != "hosts:          files dns" {
					t.Fatalf("nsswitchWithDNS(%q) keeps hosts line %q", local, l)
				}
			}
		}
		if hostsLines == 0 {
			t.Fatalf("nsswitchWithDNS(%q) = %q has no hosts line", local, out)
		}
		kept := map[string]bool{}
		for _, l := range strings.Split(out, "\n") {
			kept[l] = true
		}
		for _, l := range strings.Split(string(local), "\n") {
			if f := strings.Fields(l); (len(f) == 0 || f[0] != "hosts:") && l != "" && !kept[l] {
				t.Fatalf("nsswitchWithDNS(%q) = %q drops line %q", local, out, l)
			}
		}
	})
}

// FuzzDNSSplit: the splitter's decision for any message is the filter's
// decision for the message's first question, and a message without a
// readable question goes to the target. With a local list only names on
// it are answered locally; with a remote list only names off it. The
// splitter is used only for port 53 and only with a filter.
func FuzzDNSSplit(f *testing.F) {
	for _, name := range []string{"git.internal.example.", "GIT.Internal.Example.", "registry.example.", "db.shop.svc.cluster.local.", "github.com.", "internal.example.", "."} {
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
		b.StartQuestions()
		b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
		msg, err := b.Finish()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg, uint16(53))
		f.Add(msg[:len(msg)-3], uint16(5353))
	}
	f.Add([]byte{1, 2, 3}, uint16(53))
	localList := rules.NewDNSNames(nil, []string{"*.internal.example", "Registry.Example."})
	remoteList := rules.NewDNSNames([]string{"*.cluster.local"}, nil)
	f.Fuzz(func(t *testing.T, msg []byte, port uint16) {
		name, _, ok := queryName(msg)
		lower := strings.ToLower(strings.TrimSuffix(name, "."))
		for _, tc := range []struct {
			names *rules.DNSNames
			local bool // what the lists say, read plainly
		}{
			{localList, strings.HasSuffix(lower, ".internal.example") || lower == "registry.example"},
			{remoteList, !strings.HasSuffix(lower, ".cluster.local")},
		} {
			s := &Supervisor{cfg: Config{DNSNames: tc.names}}
			got := s.isLocalQuery(msg)
			if got != s.isLocalQuery(bytes.Clone(msg)) {
				t.Fatalf("isLocalQuery(%x) is not stable", msg)
			}
			if got != (ok && tc.local) {
				t.Fatalf("isLocalQuery(%x) = %v for name %q (parsed %v)", msg, got, name, ok)
			}
			dest := netip.AddrPortFrom(netip.MustParseAddr("10.96.0.10"), port)
			if s.splitsDNS(dest) != (port == 53) {
				t.Fatalf("splitsDNS(%v) = %v", dest, s.splitsDNS(dest))
			}
		}
		none := &Supervisor{}
		if none.isLocalQuery(msg) || none.splitsDNS(netip.AddrPortFrom(netip.IPv4Unspecified(), 53)) {
			t.Fatalf("without a filter %x is split", msg)
		}
	})
}
