package bootstrap

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestLibraryIsBuiltFromThisSource(t *testing.T) {
	src, err := os.ReadFile("bootstrap.c")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(src)
	if got := hex.EncodeToString(sum[:]); got != sourceSHA256 {
		t.Fatalf("bootstrap.c (sha256 %s) changed since libremocal_bootstrap.so was built (from %s): run make bootstrap and commit both", got, sourceSHA256)
	}
}

func TestLibraryIsASmallSharedObject(t *testing.T) {
	f, err := elf.NewFile(bytes.NewReader(Library()))
	if err != nil {
		t.Fatalf("the embedded library is not ELF: %v", err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_DYN {
		t.Fatalf("class %v machine %v type %v, want a 64-bit x86_64 shared object", f.Class, f.Machine, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the library has a program interpreter: built as an executable?")
		}
	}

	// Needs libc and nothing else.
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(libs, []string{"libc.so.6"}) {
		t.Errorf("DT_NEEDED %v, want only libc.so.6", libs)
	}

	// The constructor is reached through DT_INIT_ARRAY: crtbegin's
	// frame_dummy comes first, ours after it.
	init, err := f.DynValue(elf.DT_INIT_ARRAYSZ)
	if err != nil || len(init) != 1 || init[0] < 2*8 {
		t.Errorf("DT_INIT_ARRAYSZ %v (%v), want room for the constructor", init, err)
	}
	if s := f.Section(".init_array"); s == nil || s.Size < 2*8 {
		t.Errorf("no .init_array holding the constructor")
	}
	if rel, _ := f.DynValue(elf.DT_TEXTREL); len(rel) != 0 {
		t.Error("the library has text relocations: built without -fPIC?")
	}

	// Exports nothing: the constructor is static and every symbol it uses
	// comes from libc (or is one of crt's weak optional references).
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	weakOptional := map[string]bool{"__gmon_start__": true, "_ITM_deregisterTMCloneTable": true, "_ITM_registerTMCloneTable": true, "__cxa_finalize": true}
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF {
			t.Errorf("the library exports %q", s.Name)
			continue
		}
		if !strings.HasPrefix(s.Version, "GLIBC_") && !weakOptional[s.Name] {
			t.Errorf("the library imports %q (version %q, library %q), which is not from libc", s.Name, s.Version, s.Library)
		}
	}
}

func TestInstallIsContentAddressedAndIdempotent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lib")
	path, err := Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(Library())
	if filepath.Dir(path) != dir || !strings.Contains(filepath.Base(path), hex.EncodeToString(sum[:8])) || !strings.HasSuffix(path, ".so") {
		t.Errorf("installed as %s, want a .so in %s named after the content hash", path, dir)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, Library()) {
		t.Fatalf("installed file differs from the embedded library (%v)", err)
	}
	before, _ := os.Stat(path)

	again, err := Install(dir)
	if err != nil || again != path {
		t.Fatalf("second Install: %q, %v; want %q", again, err, path)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Error("second Install rewrote an identical library instead of reusing it")
	}

	// A damaged copy is replaced, atomically: a new file, not rewritten in
	// place under a program that might be loading it.
	if err := os.WriteFile(path, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	damaged, _ := os.Stat(path)
	if _, err := Install(dir); err != nil {
		t.Fatal(err)
	}
	repaired, _ := os.Stat(path)
	if got, _ := os.ReadFile(path); !bytes.Equal(got, Library()) {
		t.Error("a damaged library was not replaced")
	}
	if os.SameFile(damaged, repaired) {
		t.Error("the damaged library was rewritten in place instead of renamed over")
	}

	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only the library (no temporary files)", names)
	}
}

func TestInstallRefusesDirectoriesOthersControl(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777) // not subject to the umask
	if _, err := Install(open); err == nil || !strings.Contains(err.Error(), "others may write") {
		t.Errorf("world-writable directory: %v, want a refusal", err)
	}
	link := filepath.Join(base, "link")
	private := filepath.Join(base, "private")
	os.Mkdir(private, 0o700)
	if err := os.Symlink(private, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(link); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("symbolic link: %v, want a refusal", err)
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(base, "other")
		os.Mkdir(other, 0o700)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := Install(other); err == nil || !strings.Contains(err.Error(), "belongs to user 65534") {
			t.Errorf("someone else's directory: %v, want a refusal", err)
		}
	}
	if _, err := Install(""); err == nil {
		t.Error("empty directory accepted")
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/4242")
	if got := DefaultDir(); got != "/run/user/4242/remocal" {
		t.Errorf("with XDG_RUNTIME_DIR: %s", got)
	}
	for _, v := range []string{"", "relative/dir"} {
		t.Setenv("XDG_RUNTIME_DIR", v)
		want := filepath.Join(os.TempDir(), "remocal-"+strconv.Itoa(os.Getuid()))
		if got := DefaultDir(); got != want {
			t.Errorf("XDG_RUNTIME_DIR=%q: %s, want %s", v, got, want)
		}
	}
}
