package supervisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/remocal/remocal/protocol/wire"
	"golang.org/x/sys/unix"
)

func TestWithUseVC(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "options use-vc\n"},
		{"newline terminated", "nameserver 10.96.0.10\n", "nameserver 10.96.0.10\noptions use-vc\n"},
		{"no final newline", "nameserver 10.96.0.10\nsearch shop.svc.cluster.local", "nameserver 10.96.0.10\nsearch shop.svc.cluster.local\noptions use-vc\n"},
		// A second options line adds to the first, as resolvers read it.
		{"options kept", "nameserver 10.96.0.10\noptions ndots:5\n", "nameserver 10.96.0.10\noptions ndots:5\noptions use-vc\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			if got := string(withUseVC(in)); got != tc.want {
				t.Errorf("withUseVC(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if string(in) != tc.in {
				t.Errorf("withUseVC changed its input to %q: it is the cached remote file", in)
			}
		})
	}
}

// The buffer given to withUseVC may have spare capacity (it is a cache
// entry's data): appending must not write into it.
func TestWithUseVCDoesNotShareBacking(t *testing.T) {
	buf := make([]byte, 0, 64)
	buf = append(buf, "nameserver 1.1.1.1\n"...)
	out := withUseVC(buf)
	out[0] = 'X'
	if buf[0] != 'n' {
		t.Error("withUseVC's result shares its input's array")
	}
}

func TestNsswitchWithDNS(t *testing.T) {
	const hosts = "hosts:          files dns"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"none on this machine", "", hosts + "\n"},
		{"systemd-resolved", "passwd: files systemd\nhosts: mymachines resolve [!UNAVAIL=return] files myhostname dns\nnetworks: files\n",
			"passwd: files systemd\n" + hosts + "\nnetworks: files\n"},
		{"mdns", "hosts:\tfiles mdns4_minimal [NOTFOUND=return] dns\n", hosts + "\n"},
		{"no hosts line", "passwd: files\ngroup: files", "passwd: files\ngroup: files\n" + hosts + "\n"},
		{"comments and blank lines kept", "# nsswitch\n\nhosts: files\n\nservices: files\n",
			"# nsswitch\n\n" + hosts + "\n\nservices: files\n"},
		{"leading blank lines dropped", "\n\nhosts: files\n", hosts + "\n"},
		{"every hosts line replaced", "hosts: files\nhosts: dns\n", hosts + "\n" + hosts + "\n"},
		// Only the "hosts:" database, not one whose name starts alike.
		{"hostsx is another database", "hostsx: files\n", "hostsx: files\n" + hosts + "\n"},
		{"commented hosts line", "#hosts: files\n", "#hosts: files\n" + hosts + "\n"},
		{"indented hosts line", "  hosts: files resolve\n", hosts + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, string(nsswitchWithDNS([]byte(tc.in)))); diff != "" {
				t.Errorf("nsswitchWithDNS(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestIsResolverFile(t *testing.T) {
	for p, want := range map[string]bool{
		"/etc/resolv.conf": true, "/etc/hosts": true, "/etc/nsswitch.conf": true,
		"/etc/hostname": false, "/etc/hosts.allow": false, "/etc/resolv.conf.d": false, "/etc": false, "etc/hosts": false,
	} {
		if got := isResolverFile(p); got != want {
			t.Errorf("isResolverFile(%q) = %v, want %v", p, got, want)
		}
	}
}

// Paths inside a directory handed out as a local skeleton lead back to the
// remote directory; anything else is not from a snapshot.
func TestFromSnapshot(t *testing.T) {
	fs := &remoteFS{snapRoot: "/tmp/remocal-dirs-1", snaps: map[string]string{
		"/tmp/remocal-dirs-1/1":  "/etc/config",
		"/tmp/remocal-dirs-1/2":  "/var/run/secrets/kubernetes.io/serviceaccount",
		"/tmp/remocal-dirs-1/12": "/data",
	}}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"/tmp/remocal-dirs-1/1", "/etc/config", true},
		{"/tmp/remocal-dirs-1/1/app.yaml", "/etc/config/app.yaml", true},
		{"/tmp/remocal-dirs-1/1/sub/dir/f", "/etc/config/sub/dir/f", true},
		{"/tmp/remocal-dirs-1/2/token", "/var/run/secrets/kubernetes.io/serviceaccount/token", true},
		// "12" is not below "1".
		{"/tmp/remocal-dirs-1/12/x", "/data/x", true},
		{"/tmp/remocal-dirs-1/3", "", false},
		{"/tmp/remocal-dirs-1", "", false},
		{"/tmp/remocal-dirs-10/1", "", false},
		{"/etc/config/app.yaml", "", false},
	} {
		got, ok := fs.fromSnapshot(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("fromSnapshot(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// special decides which paths get content of the supervisor's making; the
// ones that need no agent are produced here.
func TestSpecialFiles(t *testing.T) {
	local, _ := os.ReadFile("/etc/nsswitch.conf")
	for _, tc := range []struct {
		name     string
		cfg      Config
		path     string
		special  bool
		want     string // checked when not empty
		wantFrom func() string
	}{
		{name: "hostname", cfg: Config{Hostname: "api-7f9c"}, path: hostnameFile, special: true, want: "api-7f9c\n"},
		{name: "local hostname kept", cfg: Config{}, path: hostnameFile},
		{name: "nsswitch with DNS", cfg: Config{DNS: true}, path: "/etc/nsswitch.conf", special: true,
			wantFrom: func() string { return string(nsswitchWithDNS(local)) }},
		{name: "nsswitch without DNS", cfg: Config{}, path: "/etc/nsswitch.conf"},
		{name: "resolv.conf with DNS", cfg: Config{DNS: true}, path: "/etc/resolv.conf", special: true},
		{name: "resolv.conf without DNS", cfg: Config{Hostname: "x"}, path: "/etc/resolv.conf"},
		// /etc/hosts is the target's as it is.
		{name: "hosts", cfg: Config{DNS: true, Hostname: "x"}, path: "/etc/hosts"},
		{name: "etc hostname", cfg: Config{DNS: true, Hostname: "x"}, path: "/etc/hostname"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := &remoteFS{s: &Supervisor{cfg: tc.cfg}}
			produce := fs.special(tc.path)
			if (produce != nil) != tc.special {
				t.Fatalf("special(%q) with %+v: got a producer %v, want %v", tc.path, tc.cfg, produce != nil, tc.special)
			}
			want := tc.want
			if tc.wantFrom != nil {
				want = tc.wantFrom()
			}
			if produce == nil || want == "" {
				return
			}
			got, err := produce(context.Background())
			if err != nil || string(got) != want {
				t.Errorf("content of %s = %q, %v; want %q", tc.path, got, err, want)
			}
		})
	}
}

// A malicious agent lists names that are not directory entries to make the
// supervisor write outside its skeleton directory: truncate a file of the
// user (../../home/u/.ssh/authorized_keys), create a directory elsewhere.
// They are skipped and reported; the target's real entries are still there.
func TestWriteSkeletonRefusesNamesOutside(t *testing.T) {
	root := t.TempDir()
	victim := filepath.Join(root, "home", "u", ".ssh", "authorized_keys")
	if err := os.MkdirAll(filepath.Dir(victim), 0o700); err != nil {
		t.Fatal(err)
	}
	const keys = "ssh-ed25519 AAAA user@laptop\n"
	if err := os.WriteFile(victim, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(root, "snaps", "1")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	entries := []wire.DirEntry{
		{Name: "../../home/u/.ssh/authorized_keys", Type: unix.DT_REG},
		{Name: "../escaped", Type: unix.DT_DIR},
		{Name: "..", Type: unix.DT_DIR},
		{Name: ".", Type: unix.DT_DIR},
		{Name: "", Type: unix.DT_REG},
		{Name: "a/b", Type: unix.DT_REG},
		{Name: "nul\x00", Type: unix.DT_REG},
		{Name: "app.yaml", Type: unix.DT_REG},
		{Name: "conf.d", Type: unix.DT_DIR},
		{Name: "current", Type: unix.DT_LNK},
		{Name: "..data", Type: unix.DT_DIR}, // Kubernetes' projected volumes have these
	}
	skipped := writeSkeleton(snap, entries)
	if got, err := os.ReadFile(victim); err != nil || string(got) != keys {
		t.Errorf("the user's file after the listing: %q, %v; want it untouched", got, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "snaps", "escaped")); err == nil {
		t.Error("a directory was created outside the skeleton")
	}
	if len(skipped) != 7 {
		t.Errorf("skipped %d entries (%v), want 7", len(skipped), skipped)
	}
	got, err := os.ReadDir(snap)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range got {
		names = append(names, fmt.Sprintf("%s:%v", e.Name(), e.Type()))
	}
	want := []string{"..data:d---------", "app.yaml:----------", "conf.d:d---------", "current:L---------"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("skeleton entries (-want +got):\n%s", diff)
	}
}
