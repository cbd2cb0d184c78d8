package session

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/remocal/remocal/protocol/config"
)

// withEnv is a session whose target gave remote, with the configuration's
// overrides already merged into it as prepare merges them.
func withEnv(remote, override map[string]string) *Session {
	vars := map[string]string{}
	for k, v := range remote {
		vars[k] = v
	}
	for k, v := range override {
		vars[k] = v
	}
	return &Session{remote: vars, cfg: &config.Config{Env: config.Env{Override: override}}}
}

func TestRemoteEnv(t *testing.T) {
	for _, tc := range []struct {
		name             string
		remote, override map[string]string
		want             map[string]string
	}{
		{"none", nil, nil, map[string]string{}},
		{"application variables", map[string]string{"DATABASE_URL": "postgres://db", "KUBERNETES_SERVICE_HOST": "10.96.0.1"}, nil,
			map[string]string{"DATABASE_URL": "postgres://db", "KUBERNETES_SERVICE_HOST": "10.96.0.1"}},
		{"this machine's variables dropped", map[string]string{
			"PATH": "/usr/local/sbin", "HOME": "/root", "USER": "app", "LOGNAME": "app", "SHELL": "/bin/sh", "TERM": "xterm",
			"COLORTERM": "x", "PWD": "/app", "OLDPWD": "/", "SHLVL": "1", "TMPDIR": "/tmp", "LANG": "C", "LANGUAGE": "en",
			"LC_ALL": "C", "LC_CTYPE": "C", "DISPLAY": ":0", "WAYLAND_DISPLAY": "w", "XDG_RUNTIME_DIR": "/run", "SSH_AUTH_SOCK": "s",
			"LD_PRELOAD": "/lib/x.so", "LD_LIBRARY_PATH": "/opt/lib", "_": "/bin/app", "APP": "kept"},
			nil, map[string]string{"APP": "kept"}},
		// Names are matched whole: only LC_* and the like are patterns.
		{"look-alikes kept", map[string]string{"PATHS": "a", "MY_HOME": "b", "LCX": "c", "XDG": "d", "USERNAME": "e", "__": "f"}, nil,
			map[string]string{"PATHS": "a", "MY_HOME": "b", "LCX": "c", "XDG": "d", "USERNAME": "e", "__": "f"}},
		{"override of a local-only variable", map[string]string{"PATH": "/usr/local/sbin", "TZ": "UTC"}, map[string]string{"PATH": "/opt/bin"},
			map[string]string{"PATH": "/opt/bin", "TZ": "UTC"}},
		{"override of a target variable", map[string]string{"LOG_LEVEL": "info"}, map[string]string{"LOG_LEVEL": "debug"},
			map[string]string{"LOG_LEVEL": "debug"}},
		{"override the target lacks", nil, map[string]string{"FEATURE_X": "on"}, map[string]string{"FEATURE_X": "on"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, withEnv(tc.remote, tc.override).RemoteEnv()); diff != "" {
				t.Errorf("RemoteEnv (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnviron(t *testing.T) {
	for _, tc := range []struct {
		name             string
		local            []string
		remote, override map[string]string
		want             []string
	}{
		{"nothing", nil, nil, nil, []string{}},
		{"local only", []string{"PATH=/usr/bin", "HOME=/home/me"}, nil, nil, []string{"PATH=/usr/bin", "HOME=/home/me"}},
		// The local order is kept; the target's new variables follow, sorted.
		{"target's added after local, sorted", []string{"PATH=/usr/bin", "EDITOR=vi"},
			map[string]string{"ZONE": "eu", "API_URL": "http://api", "DB": "x"}, nil,
			[]string{"PATH=/usr/bin", "EDITOR=vi", "API_URL=http://api", "DB=x", "ZONE=eu"}},
		{"target's win in place", []string{"A=1", "LOG_LEVEL=debug", "B=2"}, map[string]string{"LOG_LEVEL": "info"}, nil,
			[]string{"A=1", "LOG_LEVEL=info", "B=2"}},
		{"this machine's stay", []string{"PATH=/usr/bin", "HOME=/home/me", "LC_ALL=de_DE.UTF-8"},
			map[string]string{"PATH": "/usr/local/sbin", "HOME": "/root", "LC_ALL": "C", "HOSTNAME": "api-7f9c"}, nil,
			[]string{"PATH=/usr/bin", "HOME=/home/me", "LC_ALL=de_DE.UTF-8", "HOSTNAME=api-7f9c"}},
		{"local-only variable the machine lacks is not taken", []string{"A=1"}, map[string]string{"SSH_AUTH_SOCK": "/tmp/s"}, nil,
			[]string{"A=1"}},
		{"overrides win over this machine", []string{"PATH=/usr/bin", "TZ=Europe/Berlin"},
			map[string]string{"PATH": "/usr/local/sbin", "TZ": "UTC"}, map[string]string{"PATH": "/opt/bin:/usr/bin"},
			[]string{"PATH=/opt/bin:/usr/bin", "TZ=UTC"}},
		{"duplicate local variable: the last counts, in the first's place", []string{"A=1", "B=2", "A=3"}, nil, nil,
			[]string{"A=3", "B=2"}},
		{"values with =", []string{"OPTS=-Dx=y"}, map[string]string{"JAVA_OPTS": "-Xmx=1g"}, nil,
			[]string{"OPTS=-Dx=y", "JAVA_OPTS=-Xmx=1g"}},
		{"empty values", []string{"EMPTY="}, map[string]string{"EMPTY": "", "OTHER": ""}, nil,
			[]string{"EMPTY=", "OTHER="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, withEnv(tc.remote, tc.override).Environ(tc.local)); diff != "" {
				t.Errorf("Environ(%q) (-want +got):\n%s", tc.local, diff)
			}
		})
	}
}

// Without supervisors a session's detail is empty, not nil: the daemon
// renders it as JSON lists.
func TestDetailEmpty(t *testing.T) {
	d := (&Session{}).Detail()
	if d.Supervised != 0 || d.Stats.Remote == nil || d.Subscriptions == nil || d.Processes == nil ||
		len(d.Stats.Remote)+len(d.Subscriptions)+len(d.Processes) != 0 {
		t.Errorf("Detail of a session without programs = %+v", d)
	}
}
