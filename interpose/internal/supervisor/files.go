package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/interpose/internal/rules"
	"github.com/remocal/remocal/interpose/internal/seccomp"
	"github.com/remocal/remocal/protocol/wire"
)

const (
	// cacheTTL bounds how stale a remote file or stat may be. Programs read
	// the same files many times at startup (resolv.conf, config), and one
	// round trip each would dominate; files changing under a running program
	// (a rotated secret) show up within this time.
	cacheTTL      = 2 * time.Second
	remoteTimeout = 30 * time.Second
	pathMax       = 4096
	hostnameFile  = "/proc/sys/kernel/hostname"
)

// remoteFS serves remote files to the supervised programs.
type remoteFS struct {
	s *Supervisor

	mu    sync.Mutex
	cache map[string]*fileEntry

	// Remote directories are materialised as local skeletons (entries
	// with the right names and types) so that getdents works on them
	// unchanged; snapRoot holds them, snaps maps each back to its remote
	// path.
	snapRoot string
	snapSeq  int
	snaps    map[string]string

	// keptLocal are the paths a policy keeps on this machine, told once.
	keptLocal map[string]bool
}

type fileEntry struct {
	at   time.Time
	info *wire.FileInfo
	data []byte
	dir  []wire.DirEntry
	err  error
}

func newRemoteFS(s *Supervisor) (*remoteFS, error) {
	root, err := os.MkdirTemp("", "remocal-dirs-")
	if err != nil {
		return nil, fmt.Errorf("create directory for remote directory listings: %w", err)
	}
	return &remoteFS{s: s, cache: map[string]*fileEntry{}, snapRoot: root, snaps: map[string]string{},
		keptLocal: map[string]bool{}}, nil
}

// failRemote answers a call whose remote request failed. A path that an
// operator policy keeps local (files.local) is read from this machine, as
// if the configuration listed it: the call continues to the kernel.
func (fs *remoteFS) failRemote(c *call, p string, err error) {
	if !wire.KeptLocal(err) {
		c.fail(errnoOf(err, unix.EIO))
		return
	}
	fs.mu.Lock()
	first := !fs.keptLocal[p]
	fs.keptLocal[p] = true
	fs.mu.Unlock()
	if first {
		fs.s.log.Info("reading a path from this machine: an operator policy keeps it off the target", "path", p, "reason", err)
	}
	c.cont()
}

func (fs *remoteFS) close() { os.RemoveAll(fs.snapRoot) }

// forget drops every cached remote file and stat.
func (fs *remoteFS) forget() {
	fs.mu.Lock()
	fs.cache = map[string]*fileEntry{}
	fs.mu.Unlock()
}

// pathArgs locates the path of a file system call and its directory fd.
func pathArgs(c *call) (dirfd int32, pathAddr uint64) {
	switch int(c.n.Data.Nr) {
	case seccomp.SysOpen, seccomp.SysStat, seccomp.SysLstat, seccomp.SysAccess, seccomp.SysReadlink:
		return atFdcwd, c.arg(0)
	default:
		return int32(c.arg(0)), c.arg(1)
	}
}

// target decides where a file system call's path lives. remote is the path
// to ask the agent for; ok is false when the call should just continue.
func (fs *remoteFS) target(c *call) (remote string, ok bool) {
	dirfd, addr := pathArgs(c)
	p, err := seccomp.ReadString(c.tid, addr, pathMax)
	if err != nil && c.denied(err) {
		return "", false
	}
	if err != nil || p == "" {
		return "", false
	}
	abs, ok := absPath(c.tid, dirfd, p)
	if !ok {
		return "", false
	}
	if r, ok := fs.fromSnapshot(abs); ok {
		return r, true
	}
	if fs.special(abs) != nil {
		return abs, true
	}
	if fs.s.cfg.Paths.Where(abs) != rules.Remote {
		return "", false
	}
	if !fs.s.cfg.DNS && isResolverFile(abs) {
		return "", false
	}
	return abs, true
}

func (fs *remoteFS) fromSnapshot(abs string) (string, bool) {
	if !strings.HasPrefix(abs, fs.snapRoot+"/") {
		return "", false
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for snap, remote := range fs.snaps {
		if abs == snap {
			return remote, true
		}
		if rest, ok := strings.CutPrefix(abs, snap+"/"); ok {
			return path.Join(remote, rest), true
		}
	}
	return "", false
}

func isResolverFile(p string) bool {
	return p == "/etc/resolv.conf" || p == "/etc/hosts" || p == "/etc/nsswitch.conf"
}

// special returns a producer for files whose served content is not simply
// the target's: the resolver configuration and the kernel's hostname file.
func (fs *remoteFS) special(abs string) func(ctx context.Context) ([]byte, error) {
	switch {
	case abs == hostnameFile && fs.s.cfg.Hostname != "":
		return func(context.Context) ([]byte, error) { return []byte(fs.s.cfg.Hostname + "\n"), nil }
	case abs == "/etc/resolv.conf" && fs.s.cfg.DNS:
		return func(ctx context.Context) ([]byte, error) {
			e := fs.content(ctx, abs)
			if e.err != nil {
				return nil, e.err
			}
			return withUseVC(e.data), nil
		}
	case abs == "/etc/nsswitch.conf" && fs.s.cfg.DNS:
		return func(context.Context) ([]byte, error) {
			local, _ := os.ReadFile(abs)
			return nsswitchWithDNS(local), nil
		}
	}
	return nil
}

// withUseVC makes resolvers query over TCP. Replies to unconnected UDP
// queries would come back from the local proxy's address, and some
// resolvers drop those; glibc and Go honour use-vc, musl does not.
func withUseVC(conf []byte) []byte {
	out := append([]byte(nil), conf...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, "options use-vc\n"...)
}

// nsswitchWithDNS keeps the local name service configuration but makes
// host lookups use only files and DNS: a local "mdns" or "resolve" module
// would resolve names on this machine, not in the target.
func nsswitchWithDNS(local []byte) []byte {
	var out []string
	replaced := false
	for _, line := range strings.Split(strings.TrimRight(string(local), "\n"), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "hosts:" {
			line, replaced = "hosts:          files dns", true
		}
		if line != "" || len(out) > 0 {
			out = append(out, line)
		}
	}
	if !replaced {
		out = append(out, "hosts:          files dns")
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

// get fetches and caches a remote path: stat, then content for regular
// files or entries for directories.
func (fs *remoteFS) get(ctx context.Context, p string, follow bool) *fileEntry {
	key := p
	if !follow {
		key = "\x00" + p
	}
	fs.mu.Lock()
	if e, ok := fs.cache[key]; ok && time.Since(e.at) < cacheTTL {
		fs.mu.Unlock()
		return e
	}
	fs.mu.Unlock()
	e := &fileEntry{at: time.Now()}
	cl := fs.s.agent()
	if follow {
		e.info, e.err = cl.Stat(ctx, p)
	} else {
		e.info, e.err = cl.Lstat(ctx, p)
	}
	fs.mu.Lock()
	fs.cache[key] = e
	fs.mu.Unlock()
	return e
}

// content returns the bytes or entries of a remote path, fetched lazily.
func (fs *remoteFS) content(ctx context.Context, p string) *fileEntry {
	e := fs.get(ctx, p, true)
	if e.err != nil || e.data != nil || e.dir != nil {
		return e
	}
	full := &fileEntry{at: e.at, info: e.info}
	switch e.info.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		full.data, full.err = fs.s.agent().ReadFile(ctx, p)
		if full.data == nil && full.err == nil {
			full.data = []byte{}
		}
		if errors.Is(full.err, agentclient.ErrFileTooLarge) {
			// The program only sees EFBIG; the user needs to know why and
			// what to change.
			fs.s.log.Warn("remote file not opened: "+full.err.Error(), "path", p)
		}
	case unix.S_IFDIR:
		full.dir, full.err = fs.s.agent().ReadDir(ctx, p)
	}
	fs.mu.Lock()
	fs.cache[p] = full
	fs.mu.Unlock()
	return full
}

func (fs *remoteFS) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(fs.s.ctx, remoteTimeout)
}

// open serves open, openat and openat2.
func (fs *remoteFS) open(c *call) {
	remote, ok := fs.target(c)
	if !ok {
		c.cont()
		return
	}
	flags := c.arg(2)
	switch int(c.n.Data.Nr) {
	case seccomp.SysOpen:
		flags = c.arg(1)
	case seccomp.SysOpenat2:
		var how [8]byte
		if err := seccomp.ReadMemory(c.tid, c.arg(2), how[:]); err != nil {
			if !c.denied(err) {
				c.cont()
			}
			return
		}
		flags = uint64(how[0]) | uint64(how[1])<<8 | uint64(how[2])<<16 | uint64(how[3])<<24
	}
	// Writes stay local (mirrord's "read" mode): the target is never
	// modified, and the program's own output lands where it runs.
	if flags&(unix.O_WRONLY|unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_APPEND|unix.O_PATH|oTmpfileBit) != 0 {
		c.cont()
		return
	}
	if !c.valid() {
		return
	}
	c.async(func(c *call) {
		ctx, cancel := fs.ctx()
		defer cancel()
		cloexec := flags&unix.O_CLOEXEC != 0
		if produce := fs.special(remote); produce != nil {
			data, err := produce(ctx)
			if err != nil {
				c.fail(errnoOf(err, unix.EIO))
				return
			}
			fs.handOut(c, remote, data, 0o644, cloexec)
			return
		}
		e := fs.content(ctx, remote)
		switch {
		case e.err != nil:
			fs.failRemote(c, remote, e.err)
		case e.dir != nil:
			fs.handOutDir(c, remote, e.dir, cloexec)
		case flags&unix.O_DIRECTORY != 0:
			c.fail(unix.ENOTDIR)
		case e.data != nil:
			fs.handOut(c, remote, e.data, e.info.Mode&0o7777, cloexec)
		default:
			// Devices, sockets and FIFOs of the target cannot be opened
			// from here.
			c.fail(unix.ENXIO)
		}
	})
}

// handOut gives the caller a read-only, sealed memfd with data.
func (fs *remoteFS) handOut(c *call, name string, data []byte, mode uint32, cloexec bool) {
	fd, err := sealedMemfd(path.Base(name), data, mode)
	if err != nil {
		fs.s.log.Error("create memfd for remote file", "path", name, "err", err)
		c.fail(unix.EIO)
		return
	}
	defer unix.Close(fd)
	// Counted before the program sees its descriptor: whatever it does
	// next, a Detail asked for afterwards includes this open.
	fs.s.stats.remote("open")
	if _, err := c.l.AddFDAndReturn(c.n.ID, fd, cloexec); err != nil && err != seccomp.ErrGone {
		fs.s.log.Error("hand remote file to the program", "path", name, "err", err)
		c.fail(unix.EIO)
	}
}

func sealedMemfd(name string, data []byte, mode uint32) (int, error) {
	fd, err := unix.MemfdCreate("remocal:"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fd)
	for off := 0; off < len(data); {
		n, err := unix.Write(fd, data[off:])
		if err != nil {
			return -1, err
		}
		off += n
	}
	if mode != 0 {
		unix.Fchmod(fd, mode)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		return -1, err
	}
	// A read-only descriptor, so the program's fcntl(F_GETFL) and writes
	// behave as for a file opened O_RDONLY.
	return unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

// handOutDir gives the caller a directory whose entries mirror the remote
// one's names and types.
func (fs *remoteFS) handOutDir(c *call, remote string, entries []wire.DirEntry, cloexec bool) {
	fs.mu.Lock()
	fs.snapSeq++
	snap := filepath.Join(fs.snapRoot, fmt.Sprint(fs.snapSeq))
	fs.mu.Unlock()
	if err := os.Mkdir(snap, 0o755); err != nil {
		c.fail(unix.EIO)
		return
	}
	for _, bad := range writeSkeleton(snap, entries) {
		fs.s.log.Warn("the agent listed a directory entry that cannot be one; skipped",
			"dir", remote, "err", bad)
	}
	fs.mu.Lock()
	fs.snaps[snap] = remote
	fs.mu.Unlock()
	fd, err := unix.Open(snap, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		c.fail(unix.EIO)
		return
	}
	defer unix.Close(fd)
	fs.s.stats.remote("opendir") // before the program sees it, as in handOut
	if _, err := c.l.AddFDAndReturn(c.n.ID, fd, cloexec); err != nil && err != seccomp.ErrGone {
		c.fail(unix.EIO)
	}
}

// writeSkeleton creates in dir an entry of each remote entry's name and
// type. Names come from the agent, which this machine trusts no more than
// it must: a name that is not one directory entry ("..", "a/b") would be
// joined into a path outside dir, so it is skipped and reported. Nothing
// existing is followed or truncated: entries are created exclusively.
func writeSkeleton(dir string, entries []wire.DirEntry) (skipped []error) {
	for _, e := range entries {
		if err := wire.CheckDirEntryName(e.Name); err != nil {
			skipped = append(skipped, err)
			continue
		}
		p := filepath.Join(dir, e.Name)
		switch e.Type {
		case unix.DT_DIR:
			os.Mkdir(p, 0o755)
		case unix.DT_LNK:
			os.Symlink("remote", p)
		default:
			if fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644); err == nil {
				unix.Close(fd)
			}
		}
	}
	return skipped
}

// stat serves stat, lstat, newfstatat and statx.
func (fs *remoteFS) stat(c *call) {
	remote, ok := fs.target(c)
	if !ok {
		c.cont()
		return
	}
	nr := int(c.n.Data.Nr)
	follow, buf := true, c.arg(1)
	switch nr {
	case seccomp.SysLstat:
		follow = false
	case seccomp.SysNewfstatat:
		follow, buf = c.arg(3)&unix.AT_SYMLINK_NOFOLLOW == 0, c.arg(2)
	case seccomp.SysStatx:
		follow, buf = c.arg(2)&unix.AT_SYMLINK_NOFOLLOW == 0, c.arg(4)
	}
	if !c.valid() {
		return
	}
	c.async(func(c *call) {
		ctx, cancel := fs.ctx()
		defer cancel()
		var info wire.FileInfo
		if produce := fs.special(remote); produce != nil {
			data, err := produce(ctx)
			if err != nil {
				c.fail(errnoOf(err, unix.EIO))
				return
			}
			info = wire.FileInfo{Mode: unix.S_IFREG | 0o644, Size: int64(len(data)), Nlink: 1, Blksize: 4096,
				Blocks: (int64(len(data)) + 511) / 512, Mtime: time.Now().UnixNano()}
			info.Atime, info.Ctime = info.Mtime, info.Mtime
		} else {
			e := fs.get(ctx, remote, follow)
			if e.err != nil {
				fs.failRemote(c, remote, e.err)
				return
			}
			info = *e.info
		}
		var out []byte
		if nr == seccomp.SysStatx {
			out = encodeStatx(&info)
		} else {
			out = encodeStat(&info)
		}
		if !c.valid() {
			return
		}
		if err := seccomp.WriteMemory(c.tid, buf, out); err != nil {
			c.fail(unix.EFAULT)
			return
		}
		fs.s.stats.remote("stat")
		c.ret(0)
	})
}

// access serves access, faccessat and faccessat2.
func (fs *remoteFS) access(c *call) {
	remote, ok := fs.target(c)
	if !ok {
		c.cont()
		return
	}
	mode := c.arg(2)
	if int(c.n.Data.Nr) == seccomp.SysAccess {
		mode = c.arg(1)
	}
	if !c.valid() {
		return
	}
	c.async(func(c *call) {
		ctx, cancel := fs.ctx()
		defer cancel()
		if fs.special(remote) != nil {
			if mode&(unix.W_OK|unix.X_OK) != 0 {
				c.fail(unix.EACCES)
			} else {
				c.ret(0)
			}
			return
		}
		if err := fs.s.agent().Access(ctx, remote, uint32(mode&7)); err != nil {
			fs.failRemote(c, remote, err)
			return
		}
		fs.s.stats.remote("access")
		c.ret(0)
	})
}

// readlink serves readlink and readlinkat.
func (fs *remoteFS) readlink(c *call) {
	remote, ok := fs.target(c)
	if !ok {
		c.cont()
		return
	}
	buf, size := c.arg(2), c.arg(3)
	if int(c.n.Data.Nr) == seccomp.SysReadlink {
		buf, size = c.arg(1), c.arg(2)
	}
	if !c.valid() {
		return
	}
	c.async(func(c *call) {
		ctx, cancel := fs.ctx()
		defer cancel()
		target, err := fs.s.agent().Readlink(ctx, remote)
		if err != nil {
			fs.failRemote(c, remote, err)
			return
		}
		out := []byte(target)
		if uint64(len(out)) > size {
			out = out[:size]
		}
		if !c.valid() {
			return
		}
		if err := seccomp.WriteMemory(c.tid, buf, out); err != nil {
			c.fail(unix.EFAULT)
			return
		}
		fs.s.stats.remote("readlink")
		c.ret(int64(len(out)))
	})
}

// oTmpfileBit is __O_TMPFILE: O_TMPFILE also contains O_DIRECTORY, so it
// cannot be tested with a plain mask.
const oTmpfileBit = 0x400000
