package rules

import (
	"net/netip"
	"testing"
)

func TestPathDefaults(t *testing.T) {
	p, err := NewPaths(PathOptions{RemoteByDefault: true, ExtraLocal: []string{"/root", "/work/project", "/"}})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]Where{
		"/":                                   Local,
		"/etc/resolv.conf":                    Remote,
		"/etc/hosts":                          Remote,
		"/etc/ssl/certs/ca-certificates.crt":  Remote,
		"/etc/passwd":                         Local,
		"/etc/inventory/config.json":          Local, // /etc stays local except the pod's identity files
		"/usr/lib/x86_64-linux-gnu/libc.so.6": Local,
		"/proc/self/status":                   Local,
		"/tmp/x":                              Local,
		"/app/config.yaml":                    Remote,
		"/var/run/secrets/token":              Remote,
		"/srv/app/main.py":                    Local, // interpreter source
		"/srv/app/lib/libfoo.so.1":            Local,
		"/srv/app/node_modules/x/index.json":  Local,
		"/root/.cache/go-build/x":             Local,
		"/work/project/go.mod":                Local,
		"/work/other":                         Remote,
		"/etcetera":                           Remote, // component boundaries, not string prefixes
	}
	for path, want := range cases {
		if got := p.Where(path); got != want {
			t.Errorf("Where(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestPathUserRulesWin(t *testing.T) {
	p, err := NewPaths(PathOptions{
		RemoteByDefault: true,
		Local:           []string{"/etc/hosts", "/data/cache", "/srv/*/tmp"},
		Remote:          []string{"/etc/inventory", "/data", "/opt/app/**/conf"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]Where{
		"/etc/hosts":                 Local,  // user local beats default remote
		"/etc/inventory/config.json": Remote, // user remote beats default local
		"/data/x":                    Remote,
		"/data/cache/y":              Local, // more specific user rule wins
		"/srv/a/tmp/z":               Local,
		"/opt/app/v1/conf/app.ini":   Remote, // ** spans components
		"/opt/app/v1/bin/app":        Local,
	}
	for path, want := range cases {
		if got := p.Where(path); got != want {
			t.Errorf("Where(%q) = %v, want %v", path, got, want)
		}
	}
	if _, err := NewPaths(PathOptions{Local: []string{"relative/dir"}}); err == nil {
		t.Error("a relative rule with a slash must be rejected")
	}
}

func TestLocalMode(t *testing.T) {
	p, _ := NewPaths(PathOptions{RemoteByDefault: false})
	if p.Where("/app/config.yaml") != Local || p.Where("/etc/resolv.conf") != Remote {
		t.Error("local mode keeps unlisted paths local but still serves the default remote files")
	}
}

func TestResolverOnly(t *testing.T) {
	p, _ := NewPaths(PathOptions{RemoteByDefault: true, ResolverOnly: true, Remote: []string{"/data"}})
	for path, want := range map[string]Where{
		"/etc/resolv.conf": Remote, "/etc/hosts": Remote, "/data/x": Remote,
		"/etc/ssl/certs/ca.pem": Local, "/etc/hostname": Local, "/app/config.yaml": Local,
	} {
		if got := p.Where(path); got != want {
			t.Errorf("Where(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestOutgoing(t *testing.T) {
	d := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	all, err := NewOutgoing(OutgoingOptions{TCP: true, UDP: true, IgnoreLocalhost: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for dest, want := range map[string]Where{
		"10.0.0.5:5432": Remote, "127.0.0.1:8080": Local, "[::1]:80": Local, "0.0.0.0:1": Local,
		"[::ffff:127.0.0.1]:80": Local, "93.184.216.34:443": Remote,
	} {
		if got := all.Where("tcp", d(dest)); got != want {
			t.Errorf("default: %s = %v, want %v", dest, got, want)
		}
	}
	noUDP, _ := NewOutgoing(OutgoingOptions{TCP: true, IgnoreLocalhost: true}, nil)
	if noUDP.Where("udp", d("10.0.0.5:53")) != Local {
		t.Error("udp disabled must keep UDP local")
	}
	if noUDP.Enabled("udp") || !noUDP.Enabled("tcp") || !all.Enabled("udp") {
		t.Error("Enabled must say which protocols go through the target")
	}

	resolve := func(host string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("10.96.0.20")}, nil
	}
	remote, err := NewOutgoing(OutgoingOptions{TCP: true, UDP: true, IgnoreLocalhost: true,
		Remote: []string{"10.0.0.0/8:5432", "db.internal", ":6379", "[fd00::1]:53"}}, resolve)
	if err != nil {
		t.Fatal(err)
	}
	for dest, want := range map[string]Where{
		"10.1.2.3:5432": Remote, "10.1.2.3:80": Local, "10.96.0.20:9999": Remote,
		"192.168.1.1:6379": Remote, "192.168.1.1:80": Local, "[fd00::1]:53": Remote, "[fd00::1]:54": Local,
	} {
		if got := remote.Where("tcp", d(dest)); got != want {
			t.Errorf("remote list: %s = %v, want %v", dest, got, want)
		}
	}
	local, _ := NewOutgoing(OutgoingOptions{TCP: true, IgnoreLocalhost: true, Local: []string{"192.168.0.0/16"}}, nil)
	if local.Where("tcp", d("192.168.1.1:80")) != Local || local.Where("tcp", d("10.0.0.1:80")) != Remote {
		t.Error("local list inverts the decision")
	}
	if _, err := NewOutgoing(OutgoingOptions{Remote: []string{"a"}, Local: []string{"b"}}, nil); err == nil {
		t.Error("both lists must be rejected")
	}
	if _, err := NewOutgoing(OutgoingOptions{Remote: []string{"10.0.0.1:99999"}}, nil); err == nil {
		t.Error("bad port must be rejected")
	}
}

func TestProcesses(t *testing.T) {
	p := NewProcesses([]string{"my-tool"})
	for exe, want := range map[string]bool{
		"/usr/local/go/bin/go": true, "/root/go/pkg/tool/linux_amd64/compile": true, "dlv": true,
		"/usr/bin/my-tool": true, "/usr/bin/python3": false, "/tmp/go-build123/b001/exe/main": false,
	} {
		if got := p.Local(exe); got != want {
			t.Errorf("Local(%q) = %v, want %v", exe, got, want)
		}
	}
}

func TestDNSNames(t *testing.T) {
	var none *DNSNames
	if none.Where("anything") != Remote {
		t.Error("without a filter every name is the target's")
	}
	local := NewDNSNames(nil, []string{"*.corp.example.com", "Laptop.Local."})
	for name, want := range map[string]Where{
		"git.corp.example.com.": Local, "a.b.corp.example.com": Local, "corp.example.com": Remote,
		"laptop.local": Local, "redis": Remote, "xcorp.example.com": Remote,
	} {
		if got := local.Where(name); got != want {
			t.Errorf("local list: %s = %v, want %v", name, got, want)
		}
	}
	remote := NewDNSNames([]string{"*.svc.cluster.local"}, nil)
	if remote.Where("redis.demo.svc.cluster.local") != Remote || remote.Where("github.com") != Local {
		t.Error("remote list inverts the decision")
	}
}
