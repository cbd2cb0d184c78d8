package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// CheckFile reports the settings of c, read from file, that a configuration
// file cannot make on its own: a repository's .remocal/config.json is
// whatever its authors committed, and cloning a repository must not be
// enough to make remocal run their code on this machine or hand a program's
// files, environment and traffic to a server of their choosing.
//
//   - agent.address over TCP: the agent protocol has no authentication, so
//     the address decides who serves the program its files, environment
//     and network. Only a unix socket owned by this user (or root), or an
//     address given on the command line, is used.
//   - kubernetes.kubeconfig inside the project (the directory holding
//     .remocal/, or the file's own directory for another file) or relative:
//     a kubeconfig's exec plugin runs any command it names.
//
// The run's own settings (remocal exec's --agent and --kubeconfig) replace
// these values; callers clear the ones they replace before checking. The
// error is an *Error whose problems name the setting and what to do.
func (c *Config) CheckFile(file string) error {
	var problems []Problem
	if a := c.Agent.Address; a != "" {
		if msg := untrustedAgent(a); msg != "" {
			problems = append(problems, Problem{Path: "$.agent.address", Message: msg})
		}
	}
	if k := c.Kubernetes.Kubeconfig; k != "" {
		if msg := untrustedKubeconfig(k, ProjectDir(file)); msg != "" {
			problems = append(problems, Problem{Path: "$.kubernetes.kubeconfig", Message: msg})
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return &Error{Source: file, Problems: problems}
}

// ProjectDir is the project a configuration file belongs to: the directory
// that holds its .remocal directory, or the file's own directory.
func ProjectDir(file string) string {
	abs, err := filepath.Abs(file)
	if err != nil {
		abs = file
	}
	dir := filepath.Dir(abs)
	if filepath.Base(dir) == Dir {
		return filepath.Dir(dir)
	}
	return dir
}

func untrustedAgent(addr string) string {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return "" // nothing listens there: connecting says so
		}
		if uid := uint32(os.Getuid()); st.Uid != uid && st.Uid != 0 {
			return "the socket " + p + " belongs to another user (uid " + strconv.FormatUint(uint64(st.Uid), 10) + "), who would serve your program its files, " +
				"environment and network; a configuration file cannot choose it: pass --agent " + addr + " if you trust that user"
		}
		return ""
	}
	return "an agent address over TCP is a choice of whom to trust: whoever listens there (and holds the key you give) serves " +
		"your program its files, environment and network, so a configuration file (a cloned repository's) cannot choose one; pass --agent " + addr +
		" (with --agent-secret-file) on the command line if you trust it"
}

func untrustedKubeconfig(path, project string) string {
	if !filepath.IsAbs(path) {
		return "a relative kubeconfig would be read from the project, and a kubeconfig's exec plugin runs any command it names; " +
			"a configuration file (a cloned repository's) cannot choose one: use an absolute path outside the project, or pass --kubeconfig"
	}
	if within(path, project) || within(resolve(path), resolve(project)) {
		return "the kubeconfig " + path + " is inside the project " + project + ", and a kubeconfig's exec plugin runs any command it names; " +
			"a configuration file (a cloned repository's) cannot choose it: pass --kubeconfig " + path + " if you trust it"
	}
	return ""
}

// resolve follows the symbolic links of p's longest existing prefix.
func resolve(p string) string {
	p = filepath.Clean(p)
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	parent := filepath.Dir(p)
	if parent == p {
		return p
	}
	return filepath.Join(resolve(parent), filepath.Base(p))
}

func within(p, dir string) bool {
	p, dir = filepath.Clean(p), filepath.Clean(dir)
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}
