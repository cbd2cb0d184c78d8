package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// journal records every change Up makes to the host before it makes it, so
// that Down can undo exactly that, also after a crash half way through Up.
// It lives in StateDir and is removed last.
type journal struct {
	mu sync.Mutex `json:"-"`

	Started time.Time `json:"started"`
	// Phase is "starting" until Up finished, then "up".
	Phase string `json:"phase"`
	// CreatedPaths are directories that did not exist before Up (its own
	// and the hard-coded ones the kubelet and containerd use): Down removes
	// them, after unmounting whatever is mounted below.
	CreatedPaths []string `json:"createdPaths"`
	// Sysctls holds the values, before Up, of every sysctl Up or the
	// daemons may change; Down writes them back.
	Sysctls map[string]string `json:"sysctls"`
	// NftTablesBefore lists "family name" of the nftables tables that
	// existed before Up; Down deletes the known ones that did not.
	NftTablesBefore []string `json:"nftTablesBefore"`
	// Links are network links Up created.
	Links []string `json:"links"`
}

func loadJournal() (*journal, error) {
	b, err := os.ReadFile(journalPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	j := &journal{}
	if err := json.Unmarshal(b, j); err != nil {
		return nil, fmt.Errorf("reading %s: %w (remove it by hand after checking what it lists)", journalPath(), err)
	}
	if j.Sysctls == nil {
		j.Sysctls = map[string]string{}
	}
	return j, nil
}

func (j *journal) save() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.saveLocked()
}

func (j *journal) saveLocked() error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(journalPath()), 0o700); err != nil {
		return err
	}
	tmp := journalPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, journalPath())
}

// mkdir creates dir (and parents), recording each directory that did not
// exist yet, before creating it.
func (j *journal) mkdir(dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	var missing []string
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	if len(missing) == 0 {
		return nil
	}
	j.mu.Lock()
	// Record the outermost one: removing it removes the rest.
	top := missing[len(missing)-1]
	if !contains(j.CreatedPaths, top) && !j.coveredLocked(top) {
		j.CreatedPaths = append(j.CreatedPaths, top)
	}
	err := j.saveLocked()
	j.mu.Unlock()
	if err != nil {
		return err
	}
	return os.MkdirAll(dir, perm)
}

// coveredLocked reports whether p is below a path already recorded.
func (j *journal) coveredLocked(p string) bool {
	for _, c := range j.CreatedPaths {
		if strings.HasPrefix(p, c+"/") {
			return true
		}
	}
	return false
}

// notePathState records that path was absent before Up, so Down may
// remove it; it is for the hard-coded paths daemons create themselves.
func (j *journal) notePathState(paths []string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if !contains(j.CreatedPaths, p) && !j.coveredLocked(p) {
			j.CreatedPaths = append(j.CreatedPaths, p)
		}
	}
	return j.saveLocked()
}

func (j *journal) addLink(name string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !contains(j.Links, name) {
		j.Links = append(j.Links, name)
	}
	return j.saveLocked()
}

func (j *journal) setPhase(p string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.Phase = p
	return j.saveLocked()
}

// sortedCreatedPaths returns the created paths, deepest first.
func (j *journal) sortedCreatedPaths() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	ps := append([]string(nil), j.CreatedPaths...)
	sort.Slice(ps, func(a, b int) bool { return len(ps[a]) > len(ps[b]) })
	return ps
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
