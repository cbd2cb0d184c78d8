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

// The target's variables that would make this machine's programs run code
// the remote side names, or load their toolchain from the target's paths,
// keep this machine's values (or stay unset); an exact name in env.include
// or an override takes the target's; KeptLocal names what was left out.
func TestToolchainEnvKeptLocal(t *testing.T) {
	target := map[string]string{
		"PYTHONHOME": "/usr", "PYTHONPATH": "/app/lib", "PYTHONSTARTUP": "/app/evil.py", "BASH_ENV": "/tmp/x.sh", "ENV": "/tmp/x.sh",
		"LD_PRELOAD": "/lib/x.so", "LD_AUDIT": "/lib/a.so", "LD_LIBRARY_PATH": "/opt/lib", "NODE_OPTIONS": "--require /x.js",
		"NODE_PATH": "/usr/lib/node", "JAVA_TOOL_OPTIONS": "-javaagent:/x.jar", "JAVA_HOME": "/usr/lib/jvm/17", "PERL5OPT": "-Mx",
		"GOROOT": "/usr/local/go", "BASH_FUNC_ls%%": "() { x; }", "GIT_SSH_COMMAND": "x", "GLIBC_TUNABLES": "x",
		"DATABASE_URL": "postgres://db", "PYTHONUNBUFFERED": "1", "NODE_ENV": "production", "JAVA_OPTS": "-Xmx1g", "HOME": "/root",
	}
	local := []string{"PATH=/usr/bin", "HOME=/home/me", "PYTHONHOME=/home/me/.pyenv/versions/3.12", "JAVA_HOME=/opt/jdk21"}
	for _, tc := range []struct {
		name           string
		include        []string
		override       map[string]string
		want, wantKept []string
	}{
		{"by default", nil, nil,
			[]string{"PATH=/usr/bin", "HOME=/home/me", "PYTHONHOME=/home/me/.pyenv/versions/3.12", "JAVA_HOME=/opt/jdk21",
				"DATABASE_URL=postgres://db", "JAVA_OPTS=-Xmx1g", "NODE_ENV=production", "PYTHONUNBUFFERED=1"},
			[]string{"BASH_ENV", "BASH_FUNC_ls%%", "ENV", "GIT_SSH_COMMAND", "GLIBC_TUNABLES", "GOROOT", "JAVA_HOME", "JAVA_TOOL_OPTIONS",
				"LD_AUDIT", "LD_LIBRARY_PATH", "LD_PRELOAD", "NODE_OPTIONS", "NODE_PATH", "PERL5OPT", "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP"}},
		// A pattern that matches them is not a choice of these variables.
		{"patterns do not take them", []string{"*", "PYTHON*;LD_*"}, nil,
			[]string{"PATH=/usr/bin", "HOME=/home/me", "PYTHONHOME=/home/me/.pyenv/versions/3.12", "JAVA_HOME=/opt/jdk21",
				"DATABASE_URL=postgres://db", "JAVA_OPTS=-Xmx1g", "NODE_ENV=production", "PYTHONUNBUFFERED=1"},
			[]string{"BASH_ENV", "BASH_FUNC_ls%%", "ENV", "GIT_SSH_COMMAND", "GLIBC_TUNABLES", "GOROOT", "JAVA_HOME", "JAVA_TOOL_OPTIONS",
				"LD_AUDIT", "LD_LIBRARY_PATH", "LD_PRELOAD", "NODE_OPTIONS", "NODE_PATH", "PERL5OPT", "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP"}},
		{"named in include", []string{"*", "PYTHONHOME; JAVA_HOME", "HOME"}, map[string]string{"NODE_OPTIONS": "--inspect"},
			[]string{"PATH=/usr/bin", "HOME=/root", "PYTHONHOME=/usr", "JAVA_HOME=/usr/lib/jvm/17",
				"DATABASE_URL=postgres://db", "JAVA_OPTS=-Xmx1g", "NODE_ENV=production", "NODE_OPTIONS=--inspect", "PYTHONUNBUFFERED=1"},
			[]string{"BASH_ENV", "BASH_FUNC_ls%%", "ENV", "GIT_SSH_COMMAND", "GLIBC_TUNABLES", "GOROOT", "JAVA_TOOL_OPTIONS",
				"LD_AUDIT", "LD_LIBRARY_PATH", "LD_PRELOAD", "NODE_PATH", "PERL5OPT", "PYTHONPATH", "PYTHONSTARTUP"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := withEnv(target, tc.override)
			s.cfg.Env.Include = tc.include
			if diff := cmp.Diff(tc.want, s.Environ(local)); diff != "" {
				t.Errorf("Environ (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantKept, s.KeptLocal()); diff != "" {
				t.Errorf("KeptLocal (-want +got):\n%s", diff)
			}
			remote := s.RemoteEnv()
			for _, k := range tc.wantKept {
				if v, ok := remote[k]; ok {
					t.Errorf("RemoteEnv has %s=%q, which Environ keeps local", k, v)
				}
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
