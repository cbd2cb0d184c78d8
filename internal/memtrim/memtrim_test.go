package memtrim

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mappedKiB adds up the Rss of this process's mappings of path.
func mappedKiB(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	total, in := 0, false
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case !strings.HasSuffix(f[0], ":"):
			in = len(f) == 6 && f[5] == path
		case in && f[0] == "Rss:":
			kb, _ := strconv.Atoi(f[1])
			total += kb
		}
	}
	return total
}

func TestReleaseExecutableUnmapsItsPages(t *testing.T) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	before := mappedKiB(t, exe)
	if err := ReleaseExecutable(); err != nil {
		t.Fatal(err)
	}
	after := mappedKiB(t, exe)
	// What runs from here on (this test, the race detector, the
	// runtime) maps some pages again at once.
	if after >= before {
		t.Errorf("the executable's mapped pages went from %d KiB to %d KiB, want fewer", before, after)
	}
	// And the program goes on: code and tables are mapped again on use.
	if got := fmt.Sprintf("%x", []byte("ok")); got != "6f6b" {
		t.Errorf("after the release: %q", got)
	}
}

// A read-only private mapping with pages written before it became
// read-only (as a loader does with relocations) keeps them: DONTNEED
// would replace them with the file's content.
func TestReleaseKeepsPrivatelyWrittenPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, bytes.Repeat([]byte("file"), 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := 4 * 4096
	written, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(written)
	copy(written, "relocated")
	if err := unix.Mprotect(written, unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	clean, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(clean)
	if clean[0] != 'f' { // maps it
		t.Fatalf("the file reads %q", clean[:4])
	}
	before := mappedKiB(t, path)
	if err := release(path); err != nil {
		t.Fatal(err)
	}
	if after := mappedKiB(t, path); after >= before {
		t.Errorf("mapped pages of the file: %d KiB before the release, %d KiB after; want fewer", before, after)
	}
	if got := string(written[:9]); got != "relocated" {
		t.Errorf("a privately written read-only page reads %q after the release, want what was written", got)
	}
	if got := string(clean[:4]); got != "file" {
		t.Errorf("a released page reads %q, want the file's content", got)
	}
}
