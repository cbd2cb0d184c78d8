package supervisor

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/protocol/wire"
)

// encodeStat lays out struct stat as the x86_64 kernel does (144 bytes).
func encodeStat(fi *wire.FileInfo) []byte {
	b := make([]byte, 144)
	le := binary.LittleEndian
	le.PutUint64(b[0:], fi.Dev)
	le.PutUint64(b[8:], fi.Ino)
	le.PutUint64(b[16:], fi.Nlink)
	le.PutUint32(b[24:], fi.Mode)
	le.PutUint32(b[28:], fi.UID)
	le.PutUint32(b[32:], fi.GID)
	le.PutUint64(b[40:], fi.Rdev)
	le.PutUint64(b[48:], uint64(fi.Size))
	le.PutUint64(b[56:], uint64(fi.Blksize))
	le.PutUint64(b[64:], uint64(fi.Blocks))
	putTimespec(b[72:], fi.Atime)
	putTimespec(b[88:], fi.Mtime)
	putTimespec(b[104:], fi.Ctime)
	return b
}

func putTimespec(b []byte, ns int64) {
	sec, nsec := splitNanos(ns)
	binary.LittleEndian.PutUint64(b, uint64(sec))
	binary.LittleEndian.PutUint64(b[8:], uint64(nsec))
}

// splitNanos splits a time in nanoseconds since 1970 as the kernel's
// timespec does: the seconds rounded down, so that the nanoseconds are in
// [0, 1e9) for times before 1970 too.
func splitNanos(ns int64) (sec, nsec int64) {
	sec, nsec = ns/1e9, ns%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	return sec, nsec
}

// encodeStatx lays out struct statx (256 bytes) with the basic fields, which
// is all the agent reports; stx_mask says so, so callers asking for birth
// time see it is missing.
func encodeStatx(fi *wire.FileInfo) []byte {
	b := make([]byte, 256)
	le := binary.LittleEndian
	le.PutUint32(b[0:], unix.STATX_BASIC_STATS)
	le.PutUint32(b[4:], uint32(fi.Blksize))
	le.PutUint32(b[16:], uint32(fi.Nlink))
	le.PutUint32(b[20:], fi.UID)
	le.PutUint32(b[24:], fi.GID)
	le.PutUint16(b[28:], uint16(fi.Mode))
	le.PutUint64(b[32:], fi.Ino)
	le.PutUint64(b[40:], uint64(fi.Size))
	le.PutUint64(b[48:], uint64(fi.Blocks))
	putStatxTime(b[64:], fi.Atime)
	putStatxTime(b[96:], fi.Ctime)
	putStatxTime(b[112:], fi.Mtime)
	le.PutUint32(b[128:], unix.Major(fi.Rdev))
	le.PutUint32(b[132:], unix.Minor(fi.Rdev))
	le.PutUint32(b[136:], unix.Major(fi.Dev))
	le.PutUint32(b[140:], unix.Minor(fi.Dev))
	return b
}

func putStatxTime(b []byte, ns int64) {
	sec, nsec := splitNanos(ns)
	binary.LittleEndian.PutUint64(b, uint64(sec))
	binary.LittleEndian.PutUint32(b[8:], uint32(nsec))
}
