package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
)

// configs resolves configuration for workspaces and watches the files of
// the workspaces clients have open: when one changes, it is verified again
// and every client is told.
type configs struct {
	s       *Server
	watcher *fsnotify.Watcher

	mu      sync.Mutex
	folders map[string][]*client // watched workspace folder → clients that opened it
	dirs    map[string]int       // watched directories → references
	last    map[string]string    // folder → last result announced, to skip duplicates
	pending map[string]*time.Timer
	done    chan struct{}
}

func newConfigs(s *Server) (*configs, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch configuration files: %w", err)
	}
	c := &configs{s: s, watcher: w, folders: map[string][]*client{}, dirs: map[string]int{}, last: map[string]string{},
		pending: map[string]*time.Timer{}, done: make(chan struct{})}
	s.wg.Go(c.run)
	return c, nil
}

func (c *configs) close() {
	c.watcher.Close()
	<-c.done
	c.mu.Lock()
	for _, t := range c.pending {
		t.Stop()
	}
	c.mu.Unlock()
}

// load finds and parses the configuration for p.
func load(p daemon.ConfigParams) (file string, cfg *config.Config, problems []daemon.Problem, err error) {
	file = p.File
	if file == "" {
		if p.WorkspaceFolder == "" {
			return "", nil, nil, daemon.Errorf(daemon.CodeInvalidParams, "give workspaceFolder or file")
		}
		folder, ferr := folderPath(p.WorkspaceFolder)
		if ferr != nil {
			return "", nil, nil, daemon.Errorf(daemon.CodeInvalidParams, "%v", ferr)
		}
		file, err = config.Find(folder)
		if errors.Is(err, config.ErrNotFound) {
			return "", &config.Config{}, []daemon.Problem{}, nil
		}
		if err != nil {
			return "", nil, nil, daemon.Errorf(daemon.CodeInvalidConfig, "%v", err)
		}
	}
	cfg, err = config.Load(file)
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, pr := range ce.Problems {
			problems = append(problems, daemon.Problem{Path: pr.Path, Line: pr.Line, Column: pr.Column, Message: pr.Message})
		}
		return file, nil, problems, nil
	}
	if err != nil {
		return file, nil, nil, daemon.Errorf(daemon.CodeInvalidConfig, "read %s: %v", file, err)
	}
	return file, cfg, []daemon.Problem{}, nil
}

// resolve answers remocal/config/resolve (withConfig) and verify.
func (c *configs) resolve(p daemon.ConfigParams, withConfig bool) (daemon.ConfigResult, error) {
	file, cfg, problems, err := load(p)
	if err != nil {
		return daemon.ConfigResult{}, err
	}
	res := daemon.ConfigResult{File: file, Valid: cfg != nil, Problems: problems}
	if withConfig && cfg != nil {
		res.Config = cfg.WithDefaults()
	}
	return res, nil
}

// watch starts watching a client's workspace folder: the folder (to see
// .remocal appear) and its .remocal directory.
func (c *configs) watch(cl *client, folder string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if slices.Contains(c.folders[folder], cl) {
		return
	}
	c.folders[folder] = append(c.folders[folder], cl)
	if len(c.folders[folder]) > 1 {
		return
	}
	for _, dir := range []string{folder, filepath.Join(folder, config.Dir)} {
		c.addDirLocked(dir)
	}
}

func (c *configs) addDirLocked(dir string) {
	if c.dirs[dir] == 0 {
		if err := c.watcher.Add(dir); err != nil {
			return // a missing .remocal is added when it appears
		}
	}
	c.dirs[dir]++
}

func (c *configs) removeDirLocked(dir string) {
	if c.dirs[dir] == 0 {
		return
	}
	c.dirs[dir]--
	if c.dirs[dir] == 0 {
		delete(c.dirs, dir)
		c.watcher.Remove(dir)
	}
}

// unwatchClient drops a departed client's folders.
func (c *configs) unwatchClient(cl *client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for folder, clients := range c.folders {
		clients = slices.DeleteFunc(clients, func(x *client) bool { return x == cl })
		if len(clients) > 0 {
			c.folders[folder] = clients
			continue
		}
		delete(c.folders, folder)
		delete(c.last, folder)
		c.removeDirLocked(folder)
		c.removeDirLocked(filepath.Join(folder, config.Dir))
	}
}

func (c *configs) run() {
	defer close(c.done)
	for {
		select {
		case ev, ok := <-c.watcher.Events:
			if !ok {
				return
			}
			c.changed(ev)
		case _, ok := <-c.watcher.Errors:
			if !ok {
				return
			}
		}
	}
}

// changed re-verifies the configuration of the folder an event belongs to.
func (c *configs) changed(ev fsnotify.Event) {
	c.mu.Lock()
	var folder string
	switch {
	case filepath.Base(ev.Name) == config.Dir && c.folders[filepath.Dir(ev.Name)] != nil:
		// .remocal appeared (or went): start watching inside it.
		folder = filepath.Dir(ev.Name)
		if ev.Has(fsnotify.Create) {
			c.dirs[ev.Name] = 0
			c.addDirLocked(ev.Name)
		}
	case filepath.Base(ev.Name) == config.File && c.folders[filepath.Dir(filepath.Dir(ev.Name))] != nil:
		folder = filepath.Dir(filepath.Dir(ev.Name))
	}
	if folder != "" {
		// Editors save in steps (create, write, rename); verify once the
		// file has been quiet briefly, rather than announce every step.
		if t, ok := c.pending[folder]; ok {
			t.Reset(settleTime)
		} else {
			c.pending[folder] = time.AfterFunc(settleTime, func() { c.verify(folder) })
		}
	}
	c.mu.Unlock()
}

// settleTime is how long a configuration file must be unchanged before it
// is verified and announced.
const settleTime = 50 * time.Millisecond

func (c *configs) verify(folder string) {
	c.mu.Lock()
	delete(c.pending, folder)
	watched := c.folders[folder] != nil
	c.mu.Unlock()
	if !watched || c.s.ctx.Err() != nil {
		return
	}
	file, _, problems, err := load(daemon.ConfigParams{WorkspaceFolder: folder})
	if err != nil {
		problems = []daemon.Problem{{Message: err.Error()}}
	}
	note := daemon.ConfigChanged{WorkspaceFolder: folder, File: file, Valid: err == nil && len(problems) == 0, Problems: problems}
	key := fmt.Sprintf("%+v", note)
	if data, rerr := os.ReadFile(file); rerr == nil {
		key += string(data)
	}
	c.mu.Lock()
	dup := c.last[folder] == key
	c.last[folder] = key
	c.mu.Unlock()
	if !dup {
		c.s.broadcast(daemon.NotifyConfigChanged, note)
	}
}
