package keeper

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"testing"
)

func TestProgramIsBuiltFromThisSource(t *testing.T) {
	src, err := os.ReadFile("keeper.c")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(src)
	if got := hex.EncodeToString(sum[:]); got != sourceSHA256 {
		t.Fatalf("keeper.c (sha256 %s) changed since remocal-keeper was built (from %s): run make keeper and commit both", got, sourceSHA256)
	}
}

// The keeper runs from a memfd on any Linux machine: a static executable
// with no interpreter and no libraries to find.
func TestProgramIsASmallStaticExecutable(t *testing.T) {
	f, err := elf.NewFile(bytes.NewReader(program))
	if err != nil {
		t.Fatalf("the embedded keeper is not ELF: %v", err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Fatalf("class %v machine %v type %v, want a 64-bit x86_64 executable", f.Class, f.Machine, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the keeper has a %v segment: not built with -static?", p.Type)
		}
	}
	if len(program) > 64<<10 {
		t.Errorf("the keeper is %d bytes: built without -Os or strip?", len(program))
	}
}
