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

// Field by field, at the offsets of struct stat and struct statx on x86_64,
// for values a real file seldom has (device numbers, large sizes, times
// with nanoseconds).
func TestEncodeStatFields(t *testing.T) {
	const sec = int64(1_700_000_000)
	fi := &wire.FileInfo{Mode: unix.S_IFCHR | 0o620, Size: 1 << 40, Ino: 0x1122334455667788, Dev: unix.Mkdev(259, 3),
		Rdev: unix.Mkdev(136, 4), Nlink: 3, UID: 1000, GID: 5, Blksize: 4096, Blocks: 1 << 31,
		Atime: sec*1e9 + 1, Mtime: sec*1e9 + 999_999_999, Ctime: 0}
	st := *(*unix.Stat_t)(unsafe.Pointer(&encodeStat(fi)[0]))
	stx := *(*unix.Statx_t)(unsafe.Pointer(&encodeStatx(fi)[0]))
	for _, tc := range []struct {
		field     string
		got, want int64
	}{
		{"st_dev", int64(st.Dev), int64(unix.Mkdev(259, 3))},
		{"st_ino", int64(st.Ino), 0x1122334455667788},
		{"st_nlink", int64(st.Nlink), 3},
		{"st_mode", int64(st.Mode), unix.S_IFCHR | 0o620},
		{"st_uid", int64(st.Uid), 1000},
		{"st_gid", int64(st.Gid), 5},
		{"st_rdev", int64(st.Rdev), int64(unix.Mkdev(136, 4))},
		{"st_size", st.Size, 1 << 40},
		{"st_blksize", st.Blksize, 4096},
		{"st_blocks", st.Blocks, 1 << 31},
		{"st_atim.tv_sec", st.Atim.Sec, sec},
		{"st_atim.tv_nsec", st.Atim.Nsec, 1},
		{"st_mtim.tv_sec", st.Mtim.Sec, sec},
		{"st_mtim.tv_nsec", st.Mtim.Nsec, 999_999_999},
		{"st_ctim.tv_sec", st.Ctim.Sec, 0},
		{"st_ctim.tv_nsec", st.Ctim.Nsec, 0},
		{"stx_mask", int64(stx.Mask), unix.STATX_BASIC_STATS},
		{"stx_blksize", int64(stx.Blksize), 4096},
		{"stx_nlink", int64(stx.Nlink), 3},
		{"stx_uid", int64(stx.Uid), 1000},
		{"stx_gid", int64(stx.Gid), 5},
		{"stx_mode", int64(stx.Mode), unix.S_IFCHR | 0o620},
		{"stx_ino", int64(stx.Ino), 0x1122334455667788},
		{"stx_size", int64(stx.Size), 1 << 40},
		{"stx_blocks", int64(stx.Blocks), 1 << 31},
		{"stx_atime.tv_sec", stx.Atime.Sec, sec},
		{"stx_atime.tv_nsec", int64(stx.Atime.Nsec), 1},
		{"stx_btime.tv_sec", stx.Btime.Sec, 0},
		{"stx_ctime.tv_sec", stx.Ctime.Sec, 0},
		{"stx_mtime.tv_sec", stx.Mtime.Sec, sec},
		{"stx_mtime.tv_nsec", int64(stx.Mtime.Nsec), 999_999_999},
		{"stx_rdev_major", int64(stx.Rdev_major), 136},
		{"stx_rdev_minor", int64(stx.Rdev_minor), 4},
		{"stx_dev_major", int64(stx.Dev_major), 259},
		{"stx_dev_minor", int64(stx.Dev_minor), 3},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.field, tc.got, tc.want)
		}
	}
}

// A time before 1970 (touch -d 1960-01-01) comes from the agent as
// negative nanoseconds; the kernel's timespec keeps tv_nsec in
// [0, 999999999] and puts the sign in tv_sec alone.
func TestEncodeStatTimesBefore1970(t *testing.T) {
	for _, tc := range []struct {
		ns       int64
		sec      int64
		nsec     int64
		kernelNs int64
	}{
		{0, 0, 0, 0},
		{1, 0, 1, 1},
		{-1, -1, 999_999_999, -1},
		{-1_500_000_000, -2, 500_000_000, -1_500_000_000},
		{-2_000_000_000, -2, 0, -2_000_000_000},
		{-315_619_200_000_000_001, -315_619_201, 999_999_999, -315_619_200_000_000_001},
	} {
		fi := &wire.FileInfo{Atime: tc.ns, Mtime: tc.ns, Ctime: tc.ns}
		st := *(*unix.Stat_t)(unsafe.Pointer(&encodeStat(fi)[0]))
		if st.Mtim.Sec != tc.sec || st.Mtim.Nsec != tc.nsec {
			t.Errorf("stat of %dns: tv_sec %d tv_nsec %d, want %d %d", tc.ns, st.Mtim.Sec, st.Mtim.Nsec, tc.sec, tc.nsec)
		}
		stx := *(*unix.Statx_t)(unsafe.Pointer(&encodeStatx(fi)[0]))
		if stx.Mtime.Sec != tc.sec || int64(stx.Mtime.Nsec) != tc.nsec {
			t.Errorf("statx of %dns: tv_sec %d tv_nsec %d, want %d %d", tc.ns, stx.Mtime.Sec, stx.Mtime.Nsec, tc.sec, tc.nsec)
		}
		if got := st.Mtim.Nano(); got != tc.kernelNs {
			t.Errorf("stat of %dns reads back as %dns", tc.ns, got)
		}
	}
}
