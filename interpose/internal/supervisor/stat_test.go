package supervisor

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/protocol/wire"
)

// The encoders must produce exactly what the kernel would write: compare
// against real stat and statx results of a file, decoded with the Go
// structs of x/sys, which mirror the kernel's.
func TestEncodersMatchKernelLayout(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stat")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("hello")
	f.Close()
	var st unix.Stat_t
	if err := unix.Stat(f.Name(), &st); err != nil {
		t.Fatal(err)
	}
	fi := &wire.FileInfo{Mode: st.Mode, Size: st.Size, Ino: st.Ino, Dev: st.Dev, Rdev: st.Rdev, Nlink: st.Nlink,
		UID: st.Uid, GID: st.Gid, Blksize: st.Blksize, Blocks: st.Blocks,
		Atime: st.Atim.Nano(), Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}

	enc := encodeStat(fi)
	if len(enc) != int(unsafe.Sizeof(st)) {
		t.Fatalf("stat encoding is %d bytes, struct stat is %d", len(enc), unsafe.Sizeof(st))
	}
	got := *(*unix.Stat_t)(unsafe.Pointer(&enc[0]))
	if got != st {
		t.Errorf("encodeStat:\n got %+v\nwant %+v", got, st)
	}

	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, f.Name(), 0, unix.STATX_BASIC_STATS, &stx); err != nil {
		t.Fatal(err)
	}
	encx := encodeStatx(fi)
	if len(encx) != int(unsafe.Sizeof(stx)) {
		t.Fatalf("statx encoding is %d bytes, struct statx is %d", len(encx), unsafe.Sizeof(stx))
	}
	gotx := *(*unix.Statx_t)(unsafe.Pointer(&encx[0]))
	for name, pair := range map[string][2]uint64{
		"mode":  {uint64(gotx.Mode), uint64(stx.Mode)},
		"size":  {gotx.Size, stx.Size},
		"ino":   {gotx.Ino, stx.Ino},
		"nlink": {uint64(gotx.Nlink), uint64(stx.Nlink)},
		"uid":   {uint64(gotx.Uid), uint64(stx.Uid)},
		"mtime": {uint64(gotx.Mtime.Sec)*1e9 + uint64(gotx.Mtime.Nsec), uint64(stx.Mtime.Sec)*1e9 + uint64(stx.Mtime.Nsec)},
		"dev":   {uint64(gotx.Dev_major)<<32 | uint64(gotx.Dev_minor), uint64(stx.Dev_major)<<32 | uint64(stx.Dev_minor)},
	} {
		if pair[0] != pair[1] {
			t.Errorf("statx %s = %d, want %d", name, pair[0], pair[1])
		}
	}
	if gotx.Mask&unix.STATX_BTIME != 0 {
		t.Error("statx must not claim a birth time it does not have")
	}
}
