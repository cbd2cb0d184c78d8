package session

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBootstrapEnv(t *testing.T) {
	const lib, sock = "/usr/lib/remocal/bootstrap.so", "/run/user/1000/remocal/s.sock"
	for _, tc := range []struct {
		name             string
		local            []string
		remote, override map[string]string
		want             []string
	}{
		{"plain", []string{"PATH=/usr/bin"}, map[string]string{"DB": "x"}, nil,
			[]string{"PATH=/usr/bin", "DB=x", "LD_PRELOAD=" + lib, "REMOCAL_SESSION_SOCKET=" + sock}},
		// The user's preload stays, after the bootstrap library, which must
		// run its constructor first.
		{"local preload kept", []string{"LD_PRELOAD=/usr/lib/libasan.so", "A=1"}, nil, nil,
			[]string{"A=1", "LD_PRELOAD=" + lib + ":/usr/lib/libasan.so", "REMOCAL_SESSION_SOCKET=" + sock}},
		{"target's preload ignored", nil, map[string]string{"LD_PRELOAD": "/opt/agent.so"}, nil,
			[]string{"LD_PRELOAD=" + lib, "REMOCAL_SESSION_SOCKET=" + sock}},
		{"overridden preload kept", []string{"LD_PRELOAD=/local.so"}, nil, map[string]string{"LD_PRELOAD": "/override.so"},
			[]string{"LD_PRELOAD=" + lib + ":/override.so", "REMOCAL_SESSION_SOCKET=" + sock}},
		// One entry each: getenv and the loader read the first of
		// duplicates, the bootstrap library would join the session it names.
		{"empty local preload", []string{"LD_PRELOAD=", "A=1"}, nil, nil,
			[]string{"A=1", "LD_PRELOAD=" + lib, "REMOCAL_SESSION_SOCKET=" + sock}},
		{"another session's socket", []string{"REMOCAL_SESSION_SOCKET=/run/old.sock", "A=1"}, nil, nil,
			[]string{"A=1", "LD_PRELOAD=" + lib, "REMOCAL_SESSION_SOCKET=" + sock}},
		{"a session's environment again", []string{"LD_PRELOAD=" + lib + ":/x.so", "REMOCAL_SESSION_SOCKET=/run/old.sock"}, nil, nil,
			[]string{"LD_PRELOAD=" + lib + ":/x.so", "REMOCAL_SESSION_SOCKET=" + sock}},
		{"target's socket variable", nil, map[string]string{"REMOCAL_SESSION_SOCKET": "/run/pod.sock"}, nil,
			[]string{"LD_PRELOAD=" + lib, "REMOCAL_SESSION_SOCKET=" + sock}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := withEnv(tc.remote, tc.override).BootstrapEnv(tc.local, lib, sock)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("BootstrapEnv(%q) (-want +got):\n%s", tc.local, diff)
			}
		})
	}
	for _, missing := range [][2]string{{"", sock}, {lib, ""}, {"", ""}} {
		if env, err := withEnv(nil, nil).BootstrapEnv(nil, missing[0], missing[1]); err == nil {
			t.Errorf("BootstrapEnv(library %q, socket %q) = %q, want an error", missing[0], missing[1], env)
		}
	}
}
