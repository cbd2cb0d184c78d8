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

// files serves file requests from the target's root filesystem.
//
// Every path is resolved with openat2(RESOLVE_IN_ROOT) against the target's
// root, so absolute symlinks and ".." inside the target's tree resolve as
// they would for the target, never into the agent's own filesystem.
type files struct {
	proc *target.Process
}

const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

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

func (f files) read(req *wire.FileRead) (*wire.FileReadResult, error) {
	fd, err := f.open(req.Path, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return nil, wire.FromErrno(wire.CodeIO, err, "open %s", req.Path)
	}
	file := os.NewFile(uintptr(fd), req.Path)
	defer file.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, wire.FromErrno(wire.CodeIO, err, "stat %s", req.Path)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return nil, &wire.Error{Code: wire.CodeIO, Errno: int(unix.EISDIR), Message: req.Path + " is a directory"}
	default:
		// Devices and FIFOs have no content to copy: reading them remotely
		// would block or never end.
		return nil, &wire.Error{Code: wire.CodeUnsupported, Errno: int(unix.EINVAL),
			Message: fmt.Sprintf("%s is not a regular file (mode %#o); only regular files can be read remotely", req.Path, st.Mode)}
	}
	if err := f.mayRead(req.Path, &st); err != nil {
		return nil, err
	}
	length := req.Length
	if length == 0 {
		if st.Size-req.Offset > wire.MaxReadSize {
			return nil, &wire.Error{Code: wire.CodeTooLarge, Errno: int(unix.EFBIG),
				Message: fmt.Sprintf("%s has %d bytes, more than the %d a single read returns; read it in ranges", req.Path, st.Size, wire.MaxReadSize)}
		}
		// Files like those in /proc report size 0 but have content.
		length = wire.MaxReadSize
	}
	buf := make([]byte, length)
	n, err := file.ReadAt(buf, req.Offset)
	if err != nil && err != io.EOF {
		return nil, wire.FromErrno(wire.CodeIO, err, "read %s", req.Path)
	}
	size := st.Size
	if int64(n)+req.Offset > size {
		size = int64(n) + req.Offset
	}
	return &wire.FileReadResult{Data: buf[:n], Size: size, EOF: err == io.EOF}, nil
}

func (f files) stat(req *wire.FileStat) (*wire.FileInfo, error) {
	flags := unix.O_PATH
	if req.NoFollow {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := f.open(req.Path, flags)
	if err != nil {
		return nil, wire.FromErrno(wire.CodeIO, err, "stat %s", req.Path)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, wire.FromErrno(wire.CodeIO, err, "stat %s", req.Path)
	}
	return &wire.FileInfo{
		Mode: st.Mode, Size: st.Size, Ino: st.Ino, Dev: st.Dev, Rdev: st.Rdev, Nlink: st.Nlink,
		UID: st.Uid, GID: st.Gid, Blksize: st.Blksize, Blocks: st.Blocks,
		Atime: st.Atim.Nano(), Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(),
	}, nil
}

func (f files) readlink(req *wire.FileReadlink) (*wire.FileReadlinkResult, error) {
	fd, err := f.open(req.Path, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return nil, wire.FromErrno(wire.CodeIO, err, "readlink %s", req.Path)
	}
	defer unix.Close(fd)
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		return nil, wire.FromErrno(wire.CodeIO, err, "readlink %s", req.Path)
	}
	return &wire.FileReadlinkResult{Target: string(buf[:n])}, nil
}

func (f files) readdir(req *wire.FileReaddir) (*wire.FileReaddirResult, error) {
	fd, err := f.open(req.Path, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, wire.FromErrno(wire.CodeIO, err, "readdir %s", req.Path)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, wire.FromErrno(wire.CodeIO, err, "stat %s", req.Path)
	}
	if err := f.mayRead(req.Path, &st); err != nil {
		return nil, err
	}
	entries := []wire.DirEntry{}
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, wire.FromErrno(wire.CodeIO, err, "readdir %s", req.Path)
		}
		if n == 0 {
			break
		}
		entries = appendDirents(entries, buf[:n])
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

// mayRead refuses what the target's process could not read itself: the
// agent opens files as root, and a Secret mounted 0400 for root must stay
// unreadable to a program that runs as the pod's unprivileged user.
func (f files) mayRead(path string, st *unix.Stat_t) error {
	return f.check("open", path, &wire.FileInfo{Mode: st.Mode, UID: st.Uid, GID: st.Gid}, unix.R_OK)
}

// check judges access want (R_OK, W_OK, X_OK bits) to a file for the
// target's credentials, as the kernel would for the target's process.
func (f files) check(op, path string, info *wire.FileInfo, want uint32) error {
	creds, err := f.proc.Credentials()
	if err != nil {
		return wire.FromErrno(wire.CodeUnavailable, err, "%s %s", op, path)
	}
	if permitted(info, creds, want) {
		return nil
	}
	return &wire.Error{Code: wire.CodePermissionDenied, Errno: int(unix.EACCES),
		Message: fmt.Sprintf("%s %s: mode %#o denies %#o to the target's uid %d", op, path, info.Mode&0o7777, want, creds.UID)}
}

// access answers access(2) as the target's real IDs would be answered. The
// agent runs as root, so asking the kernel directly would say yes to nearly
// everything.
func (f files) access(req *wire.FileAccess) error {
	info, err := f.stat(&wire.FileStat{Path: req.Path})
	if err != nil {
		return err
	}
	if req.Mode == 0 {
		return nil
	}
	return f.check("access", req.Path, info, req.Mode)
}

// permitted applies the kernel's generic_permission rules for access(2).
func permitted(info *wire.FileInfo, c target.Credentials, want uint32) bool {
	perm := info.Mode & 0o777
	if c.UID == 0 {
		// Root passes read and write checks; execute needs some x bit
		// unless it is a directory.
		if want&1 == 0 || info.Mode&unix.S_IFMT == unix.S_IFDIR || perm&0o111 != 0 {
			return true
		}
		return false
	}
	var bits uint32
	switch {
	case info.UID == c.UID:
		bits = perm >> 6
	case info.GID == c.GID || containsID(c.Groups, info.GID):
		bits = perm >> 3 & 7
	default:
		bits = perm & 7
	}
	return bits&want == want
}

func containsID(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
