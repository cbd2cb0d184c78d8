package agentclient

import (
	"slices"
	"strings"
	"testing"
)

var resolverSeeds = []string{
	"search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
	"nameserver 10.96.0.10 # the cluster DNS\nnameserver fd00::a\noptions use-vc ndots:99\n",
	"domain example.com\nsearch a b\noptions tcp ndots:-3\n",
	"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.1.2.3 Web.Example. web # pod\n",
	"fe80::1%eth0 link.local\n1.2.3.4\n# 5.6.7.8 gone\n1.2.3.4 .\n",
	"",
	"nameserver\nnameserver not-an-ip\n;comment\n",
}

// FuzzParseHosts: every address is valid, every
// name is lower case without whitespace or a comment, and a file read twice
// gives the same table.
func FuzzParseHosts(f *testing.F) {
	for _, s := range resolverSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		hosts := parseHosts(data)
		again := parseHosts(data)
		if len(again) != len(hosts) {
			t.Fatalf("parseHosts(%q) is not stable", data)
		}
		for name, addrs := range hosts {
			if strings.ContainsAny(name, " \t\r\n\v\f#") || name != strings.ToLower(name) {
				t.Fatalf("parseHosts(%q): name %q", data, name)
			}
			if len(addrs) == 0 || !slices.Equal(addrs, again[name]) {
				t.Fatalf("parseHosts(%q): %q has %v then %v", data, name, addrs, again[name])
			}
			for _, a := range addrs {
				if !a.IsValid() {
					t.Fatalf("parseHosts(%q): %q has address %v", data, name, a)
				}
			}
		}
	})
}

// FuzzParseResolvConf: ndots stays within what glibc allows, nameservers are
// valid addresses, search domains have no whitespace, use-vc is set only
// when the file asks for it, and a use-vc line appended (as the supervisor
// serves resolv.conf) sets it without changing anything else.
func FuzzParseResolvConf(f *testing.F) {
	for _, s := range resolverSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		conf := parseResolvConf(data)
		if conf.ndots < 0 || conf.ndots > 15 {
			t.Fatalf("parseResolvConf(%q): ndots %d", data, conf.ndots)
		}
		for _, ns := range conf.nameservers {
			if !ns.IsValid() {
				t.Fatalf("parseResolvConf(%q): nameserver %v", data, ns)
			}
		}
		for _, s := range conf.search {
			if s == "" || strings.ContainsAny(s, " \t\r\n\v\f#;") {
				t.Fatalf("parseResolvConf(%q): search domain %q", data, s)
			}
		}
		if conf.useVC && !strings.Contains(string(data), "use-vc") && !strings.Contains(string(data), "tcp") {
			t.Fatalf("parseResolvConf(%q): use-vc from nowhere", data)
		}
		withVC := append([]byte(nil), data...)
		if len(withVC) > 0 && withVC[len(withVC)-1] != '\n' {
			withVC = append(withVC, '\n')
		}
		withVC = append(withVC, "options use-vc\n"...)
		vc := parseResolvConf(withVC)
		if !vc.useVC || vc.ndots != conf.ndots || !slices.Equal(vc.nameservers, conf.nameservers) || !slices.Equal(vc.search, conf.search) {
			t.Fatalf("parseResolvConf(%q) = %+v; with use-vc appended %+v", data, conf, vc)
		}
	})
}
