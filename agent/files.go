package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/agent/target"
	"github.com/remocal/remocal/protocol/wire"
)

// files serves file requests from the target's root filesystem, judged as
// the target's own process would be judged.
//
// Every path is resolved with openat2(RESOLVE_IN_ROOT) against the target's
// root, so absolute symlinks and ".." inside the target's tree resolve as
// they would for the target, never into the agent's own filesystem. Every
// resolution and open runs with the target's credentials (target.As): the
// kernel itself checks search permission on every parent and read permission
// on what is opened, as for the target, though the agent is root. Nothing is
// opened before its type is known: paths are resolved to O_PATH handles,
// which open nothing, and only regular files and directories are opened for
// reading, so a FIFO's waiting writer is never woken and no device acts on
// an open.
type files struct {
	proc *target.Process
}

const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// A listing is one response frame, held whole in the agent and the client
// while it is built and read, so it is bounded: at most maxReaddirEntries
// entries with at most maxReaddirNameBytes of names, which keeps the frame
// well under wire.MaxFrameSize even with 255-byte names. Directories a
// program lists from its pod (config trees, certificate bundles, templates)
// have far fewer; larger ones are data, better kept local.
const (
	maxReaddirEntries   = 65536
	maxReaddirNameBytes = 8 << 20
)

// open resolves path in the target's root. Call it inside judge, so that the
// walk is judged as the target.
func (f files) open(path string, flags int) (int, error) {
	flags |= unix.O_CLOEXEC
	if flags&unix.O_PATH == 0 {
		// openat2, unlike openat, rejects flags that O_PATH ignores.
		flags |= unix.O_NOCTTY
	}
	how := unix.OpenHow{Flags: uint64(flags), Resolve: resolveFlags}
	for {
		fd, err := unix.Openat2(int(f.proc.Root().Fd()), path, &how)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			// EAGAIN: a concurrent rename raced the RESOLVE_IN_ROOT walk.
			continue
		}
		return fd, err
	}
}

// judge runs fn with the target's credentials: its filesystem IDs, or its
// real IDs for access(2). An error of fn that is not a *wire.Error becomes
// one naming op and path; a permission error names the IDs it was judged by.
func (f files) judge(op, path string, realIDs bool, fn func() error) error {
	creds, err := f.proc.Credentials()
	if err != nil {
		return wire.FromErrno(wire.CodeUnavailable, err, "%s %s", op, path)
	}
	ids := creds.FS()
	if realIDs {
		ids = creds.Real()
	}
	var ferr error
	if err := target.As(ids, func() { ferr = fn() }); err != nil {
		return wire.Errorf(wire.CodeInternal, "%s %s: cannot judge it as the target would be: %v; the agent must run as root with CAP_SETUID and CAP_SETGID", op, path, err)
	}
	if ferr == nil {
		return nil
	}
	var we *wire.Error
	if !errors.As(ferr, &we) {
		we = wire.FromErrno(wire.CodeIO, ferr, "%s %s", op, path)
	}
	if we.Errno == int(unix.EACCES) && ids.UID != 0 {
		we.Message += fmt.Sprintf(" (judged for the target's uid %d, gid %d, groups %v: the target cannot reach it either)", ids.UID, ids.GID, ids.Groups)
	}
	return we
}

func (f files) read(req *wire.FileRead) (*wire.FileReadResult, error) {
	var res *wire.FileReadResult
	err := f.judge("open", req.Path, false, func() error {
		file, st, err := f.openRegular(req.Path)
		if err != nil {
			return err
		}
		defer file.Close()
		length := req.Length
		if length == 0 {
			if st.Size-req.Offset > wire.MaxReadSize {
				return &wire.Error{Code: wire.CodeTooLarge, Errno: int(unix.EFBIG),
					Message: fmt.Sprintf("%s has %d bytes, more than the %d a single read returns; read it in ranges", req.Path, st.Size, wire.MaxReadSize)}
			}
			// Files like those in /proc report size 0 but have content.
			length = wire.MaxReadSize
		}
		buf := make([]byte, length)
		n, err := file.ReadAt(buf, req.Offset)
		if err != nil && err != io.EOF {
			return wire.FromErrno(wire.CodeIO, err, "read %s", req.Path)
		}
		size := st.Size
		if int64(n)+req.Offset > size {
			size = int64(n) + req.Offset
		}
		res = &wire.FileReadResult{Data: buf[:n], Size: size, EOF: err == io.EOF}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// openRegular opens path for reading if it is a regular file, and refuses
// anything else by its type before opening it.
func (f files) openRegular(path string) (*os.File, *unix.Stat_t, error) {
	pfd, err := f.open(path, unix.O_PATH)
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, nil, wire.FromErrno(wire.CodeIO, err, "stat %s", path)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return nil, nil, &wire.Error{Code: wire.CodeIO, Errno: int(unix.EISDIR), Message: path + " is a directory"}
	default:
		// Devices and FIFOs have no content to copy, and opening them
		// acts: a FIFO's waiting writer would be let through, a device
		// could rewind or hang up.
		return nil, nil, &wire.Error{Code: wire.CodeUnsupported, Errno: int(unix.EINVAL),
			Message: fmt.Sprintf("%s is not a regular file (mode %#o); only regular files can be read remotely", path, st.Mode)}
	}
	// Opening the O_PATH handle's magic link opens exactly the inode whose
	// type was checked, and the kernel checks read permission as for any
	// open (the parents were checked resolving the handle). The link is
	// our own process's, so following it needs no privilege.
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", pfd), unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), path), &st, nil
}

func (f files) stat(req *wire.FileStat) (*wire.FileInfo, error) {
	flags := unix.O_PATH
	if req.NoFollow {
		flags |= unix.O_NOFOLLOW
	}
	var st unix.Stat_t
	err := f.judge("stat", req.Path, false, func() error {
		fd, err := f.open(req.Path, flags)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Fstat(fd, &st)
	})
	if err != nil {
		return nil, err
	}
	return &wire.FileInfo{
		Mode: st.Mode, Size: st.Size, Ino: st.Ino, Dev: st.Dev, Rdev: st.Rdev, Nlink: st.Nlink,
		UID: st.Uid, GID: st.Gid, Blksize: st.Blksize, Blocks: st.Blocks,
		Atime: st.Atim.Nano(), Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(),
	}, nil
}

func (f files) readlink(req *wire.FileReadlink) (*wire.FileReadlinkResult, error) {
	var link string
	err := f.judge("readlink", req.Path, false, func() error {
		fd, err := f.open(req.Path, unix.O_PATH|unix.O_NOFOLLOW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return err
		}
		link = string(buf[:n])
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &wire.FileReadlinkResult{Target: link}, nil
}

func (f files) readdir(req *wire.FileReaddir) (*wire.FileReaddirResult, error) {
	entries := []wire.DirEntry{}
	err := f.judge("readdir", req.Path, false, func() error {
		// O_DIRECTORY refuses anything else before opening it, and the
		// open checks read permission on the directory.
		fd, err := f.open(req.Path, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		names := 0 // bytes of names so far
		buf := make([]byte, 32<<10)
		for {
			n, err := unix.Getdents(fd, buf)
			if err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
			before := len(entries)
			entries = appendDirents(entries, buf[:n])
			for _, e := range entries[before:] {
				names += len(e.Name)
			}
			if len(entries) > maxReaddirEntries || names > maxReaddirNameBytes {
				return wire.Errorf(wire.CodeTooLarge,
					"directory %s has more than %d entries (or %d MiB of names), more than remocal lists from the target; make it local with \"fs\": {\"local\": [%q]} in .remocal/config.json",
					req.Path, maxReaddirEntries, maxReaddirNameBytes>>20, req.Path)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	return &wire.FileReaddirResult{Entries: entries}, nil
}

// appendDirents decodes struct linux_dirent64 records.
func appendDirents(entries []wire.DirEntry, buf []byte) []wire.DirEntry {
	const nameOff = 19 // d_ino(8) d_off(8) d_reclen(2) d_type(1)
	for len(buf) >= nameOff {
		reclen := int(uint16(buf[16]) | uint16(buf[17])<<8)
		if reclen < nameOff || reclen > len(buf) {
			break
		}
		ino := uint64(0)
		for i := 7; i >= 0; i-- {
			ino = ino<<8 | uint64(buf[i])
		}
		name := unix.ByteSliceToString(buf[nameOff:reclen])
		if name != "." && name != ".." {
			entries = append(entries, wire.DirEntry{Name: name, Type: buf[18], Ino: ino})
		}
		buf = buf[reclen:]
	}
	return entries
}

// access answers access(2) as it would be answered to the target: by its
// real IDs, which is what access(2) checks (AT_EACCESS makes the kernel use
// the filesystem IDs judge gave the thread, not its real uid, root).
func (f files) access(req *wire.FileAccess) error {
	return f.judge("access", req.Path, true, func() error {
		fd, err := f.open(req.Path, unix.O_PATH)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Faccessat2(fd, "", req.Mode, unix.AT_EACCESS|unix.AT_EMPTY_PATH)
	})
}
