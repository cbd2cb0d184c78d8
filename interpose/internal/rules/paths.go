// Package rules decides, for the interposition layer, what is served from
// the target and what stays local: file paths, outgoing destinations and
// processes. Decisions are pure functions of configuration, so they are
// unit-tested exhaustively and cheap enough to run inline in the
// supervisor's notification loop.
package rules

import (
	"fmt"
	"path"
	"strings"
)

// Where a path is served from.
type Where int

const (
	Local Where = iota
	Remote
)

func (w Where) String() string {
	if w == Remote {
		return "remote"
	}
	return "local"
}

// Default path rules, shaped after mirrord's long-tested defaults (facts,
// not code). Program files, system state and scratch space stay local;
// the files that make up a pod's identity and name resolution are remote;
// everything else (application config, secrets, data) is the target's.
var (
	DefaultRemote = []string{"/etc/resolv.conf", "/etc/hosts", "/etc/hostname", "/etc/ssl/certs"}
	// ResolverFiles are all a targetless session takes from its agent's
	// pod: the cluster's search path and name server. The agent's image
	// has no certificates or identity worth taking.
	ResolverFiles = []string{"/etc/resolv.conf", "/etc/hosts"}
	DefaultLocal  = []string{
		"/proc", "/sys", "/dev", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/bin", "/sbin",
		"/etc", "/home", "/opt", "/tmp", "/var/tmp", "/run", "/nix", "/snap",
		// By name, wherever they are: shared libraries and interpreter
		// sources belong to the program being run, not to the pod.
		"*.so", "*.so.*", "*.py", "*.pyc", "*.js", "*.mjs", "*.cjs", "*.jar", "*.class", "**/node_modules",
		"**/__pycache__",
	}
)

// PathOptions configure path decisions.
type PathOptions struct {
	// RemoteByDefault serves paths no rule mentions from the target
	// (mirrord's "read" mode). False keeps them local.
	RemoteByDefault bool
	// Local and Remote are the user's rules; they beat every default.
	Local, Remote []string
	// ExtraLocal are directories of this session that must stay local
	// whatever the defaults say: $HOME, the working directory, the
	// program's own directory.
	ExtraLocal []string
	// ResolverOnly serves only ResolverFiles remotely unless the user's
	// rules say otherwise, whatever RemoteByDefault says: targetless
	// sessions.
	ResolverOnly bool
}

// Paths decides where a file path is served from.
type Paths struct {
	userLocal, userRemote []pattern
	defRemote             []pattern
	extraLocal            []pattern
	defLocal              []pattern
	remoteByDefault       bool
}

// NewPaths compiles the rules.
func NewPaths(o PathOptions) (*Paths, error) {
	p := &Paths{remoteByDefault: o.RemoteByDefault}
	var err error
	if p.userLocal, err = compileAll(o.Local); err != nil {
		return nil, err
	}
	if p.userRemote, err = compileAll(o.Remote); err != nil {
		return nil, err
	}
	p.defRemote, _ = compileAll(DefaultRemote)
	if o.ResolverOnly {
		p.defRemote, _ = compileAll(ResolverFiles)
		p.remoteByDefault = false
	}
	p.defLocal, _ = compileAll(DefaultLocal)
	for _, dir := range o.ExtraLocal {
		// "/" as a working directory or home would make everything
		// local; such a directory says nothing about the project.
		if dir = path.Clean(dir); dir != "/" && path.IsAbs(dir) {
			p.extraLocal = append(p.extraLocal, compile(dir))
		}
	}
	return p, nil
}

// Where decides for an absolute, clean path. It runs for every file system
// call the supervisor sees, so the common pattern shapes (a literal
// directory, "*.ext", "**/name") are matched without splitting the path.
func (p *Paths) Where(abs string) Where {
	if abs == "/" {
		return Local
	}
	// The user's rules first; between a local and a remote rule that both
	// match, the more specific one (more components) wins.
	l, r := bestMatch(p.userLocal, abs), bestMatch(p.userRemote, abs)
	switch {
	case r > l:
		return Remote
	case l >= 0:
		return Local
	}
	if bestMatch(p.defRemote, abs) >= 0 {
		return Remote
	}
	if bestMatch(p.extraLocal, abs) >= 0 || bestMatch(p.defLocal, abs) >= 0 {
		return Local
	}
	if p.remoteByDefault {
		return Remote
	}
	return Local
}

// pattern is a path rule. Absolute patterns match a path and everything
// below it, component by component; "*" matches within one component and
// "**" any number of components. A pattern without "/" matches the last
// component (a file name) anywhere.
type pattern struct {
	kind   patternKind
	text   string   // literal prefix, suffix or component, by kind
	comps  []string // generic patterns
	weight int      // components, for "more specific wins"
}

type patternKind int

const (
	literalPrefix patternKind = iota // "/usr/lib": the path or below
	nameSuffix                       // "*.py": file names ending in text
	nameContains                     // "*.so.*": file names containing text
	anyComponent                     // "**/node_modules": that component anywhere
	genericName                      // other file name globs
	genericPath                      // other path globs
)

func compile(s string) pattern {
	hasGlob := func(x string) bool { return strings.ContainsAny(x, "*?[") }
	if !strings.Contains(s, "/") {
		switch {
		case strings.HasPrefix(s, "*") && !hasGlob(s[1:]):
			return pattern{kind: nameSuffix, text: s[1:], weight: 1}
		case strings.HasPrefix(s, "*") && strings.HasSuffix(s, "*") && len(s) > 2 && !hasGlob(s[1:len(s)-1]):
			return pattern{kind: nameContains, text: s[1 : len(s)-1], weight: 1}
		}
		return pattern{kind: genericName, text: s, weight: 1}
	}
	clean := path.Clean(s)
	if rest, ok := strings.CutPrefix(clean, "**/"); ok && !strings.Contains(rest, "/") && !hasGlob(rest) {
		return pattern{kind: anyComponent, text: rest, weight: 1}
	}
	comps := strings.Split(strings.Trim(clean, "/"), "/")
	if !hasGlob(clean) {
		return pattern{kind: literalPrefix, text: clean, weight: len(comps)}
	}
	return pattern{kind: genericPath, comps: comps, weight: len(comps)}
}

func compileAll(list []string) ([]pattern, error) {
	var out []pattern
	for _, s := range list {
		if s == "" {
			return nil, fmt.Errorf("empty path rule")
		}
		if strings.Contains(s, "/") && !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "**/") {
			return nil, fmt.Errorf("path rule %q must be absolute, start with **/, or be a file name pattern without /", s)
		}
		out = append(out, compile(s))
	}
	return out, nil
}

// bestMatch returns the weight of the most specific matching pattern, or
// -1.
func bestMatch(ps []pattern, abs string) int {
	best := -1
	for i := range ps {
		if ps[i].weight > best && ps[i].match(abs) {
			best = ps[i].weight
		}
	}
	return best
}

func (p *pattern) match(abs string) bool {
	switch p.kind {
	case literalPrefix:
		return abs == p.text || (strings.HasPrefix(abs, p.text) && abs[len(p.text)] == '/')
	case nameSuffix:
		return strings.HasSuffix(abs[strings.LastIndexByte(abs, '/')+1:], p.text)
	case nameContains:
		return strings.Contains(abs[strings.LastIndexByte(abs, '/')+1:], p.text)
	case anyComponent:
		return strings.Contains(abs, "/"+p.text+"/") || strings.HasSuffix(abs, "/"+p.text)
	case genericName:
		ok, _ := path.Match(p.text, abs[strings.LastIndexByte(abs, '/')+1:])
		return ok
	}
	return prefixMatch(p.comps, strings.Split(strings.TrimPrefix(abs, "/"), "/"))
}

// prefixMatch reports whether pat matches a prefix of comps.
func prefixMatch(pat, comps []string) bool {
	if len(pat) == 0 {
		return true
	}
	if pat[0] == "**" {
		for i := 0; i <= len(comps); i++ {
			if prefixMatch(pat[1:], comps[i:]) {
				return true
			}
		}
		return false
	}
	if len(comps) == 0 {
		return false
	}
	if ok, _ := path.Match(pat[0], comps[0]); !ok {
		return false
	}
	return prefixMatch(pat[1:], comps[1:])
}
