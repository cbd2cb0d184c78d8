package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What a configuration file cannot choose on its own: an agent over TCP, a
// socket of another user, a kubeconfig inside its project or relative.
func TestCheckFile(t *testing.T) {
	project := t.TempDir()
	file := filepath.Join(project, Dir, File)
	outside := t.TempDir()
	mine := filepath.Join(outside, "mine.sock")
	l, err := net.Listen("unix", mine)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	theirs := filepath.Join(outside, "theirs.sock")
	l2, err := net.Listen("unix", theirs)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if os.Getuid() == 0 {
		if err := os.Lchown(theirs, 4242, 4242); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(outside, "link")
	if err := os.Symlink(project, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		problem string // "" when accepted
	}{
		{"nothing", Config{}, ""},
		{"agent over TCP", Config{Agent: Agent{Address: "tcp:203.0.113.7:7878"}}, "$.agent.address: an agent address over TCP is a choice of whom to trust"},
		{"loopback TCP too", Config{Agent: Agent{Address: "tcp:127.0.0.1:7878"}}, "pass --agent tcp:127.0.0.1:7878"},
		{"this user's socket", Config{Agent: Agent{Address: "unix:" + mine}}, ""},
		{"a socket that does not exist", Config{Agent: Agent{Address: "unix:/nonexistent/agent.sock"}}, ""},
		{"kubeconfig outside", Config{Kubernetes: Kubernetes{Kubeconfig: filepath.Join(outside, "config")}}, ""},
		{"kubeconfig inside", Config{Kubernetes: Kubernetes{Kubeconfig: filepath.Join(project, "deploy", "kubeconfig")}},
			"$.kubernetes.kubeconfig: the kubeconfig " + filepath.Join(project, "deploy", "kubeconfig") + " is inside the project"},
		{"kubeconfig in .remocal", Config{Kubernetes: Kubernetes{Kubeconfig: filepath.Join(project, Dir, "kubeconfig")}}, "is inside the project"},
		{"kubeconfig with ..", Config{Kubernetes: Kubernetes{Kubeconfig: filepath.Join(outside, "..", filepath.Base(project), "k")}}, "is inside the project"},
		{"kubeconfig through a link", Config{Kubernetes: Kubernetes{Kubeconfig: filepath.Join(link, "k")}}, "is inside the project"},
		{"relative kubeconfig", Config{Kubernetes: Kubernetes{Kubeconfig: "kubeconfig"}}, "a relative kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.CheckFile(file)
			if tc.problem == "" {
				if err != nil {
					t.Errorf("CheckFile: %v", err)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Source != file || !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("CheckFile = %v, want an *Error from %s with %q", err, file, tc.problem)
			}
		})
	}
	if os.Getuid() == 0 {
		err := (&Config{Agent: Agent{Address: "unix:" + theirs}}).CheckFile(file)
		if err == nil || !strings.Contains(err.Error(), "belongs to another user (uid 4242)") {
			t.Errorf("another user's socket: %v", err)
		}
	}
	// A file outside a .remocal directory: its own directory is the project.
	other := filepath.Join(outside, "remocal.json")
	if err := (&Config{Kubernetes: Kubernetes{Kubeconfig: filepath.Join(outside, "k")}}).CheckFile(other); err == nil {
		t.Error("a kubeconfig beside a -f file was accepted")
	}
}
