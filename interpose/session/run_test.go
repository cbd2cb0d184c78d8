package session

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitPath(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		// An empty PATH entry is the working directory, as for a shell.
		{"", []string{"."}},
		{"/usr/bin", []string{"/usr/bin"}},
		{"/usr/local/bin:/usr/bin", []string{"/usr/local/bin", "/usr/bin"}},
		{":/usr/bin", []string{".", "/usr/bin"}},
		{"/usr/bin:", []string{"/usr/bin", "."}},
		{"/a::/b", []string{"/a", ".", "/b"}},
	} {
		if diff := cmp.Diff(tc.want, splitPath(tc.in)); diff != "" {
			t.Errorf("splitPath(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestCutPrefix(t *testing.T) {
	for _, tc := range []struct {
		s, p, rest string
		ok         bool
	}{
		{"PATH=/usr/bin", "PATH=", "/usr/bin", true},
		{"PATH=", "PATH=", "", true},
		{"PATHS=/x", "PATH=", "", false},
		{"PAT", "PATH=", "", false},
		{"", "", "", true},
	} {
		rest, ok := cutPrefix(tc.s, tc.p)
		if rest != tc.rest || ok != tc.ok {
			t.Errorf("cutPrefix(%q, %q) = %q, %v; want %q, %v", tc.s, tc.p, rest, ok, tc.rest, tc.ok)
		}
	}
}

// lookPath finds programs with the PATH the program will get, not
// remocal's own.
func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	exe := write("bin/app", 0o755)
	write("bin/notes", 0o644)
	shadow := write("first/app", 0o755)
	os.MkdirAll(filepath.Join(dir, "dirs/app"), 0o755)
	for _, tc := range []struct {
		name    string
		program string
		env     []string
		want    string
		missing bool
	}{
		{"in PATH", "app", []string{"PATH=" + filepath.Join(dir, "bin")}, exe, false},
		{"first in PATH wins", "app", []string{"PATH=" + filepath.Join(dir, "first") + ":" + filepath.Join(dir, "bin")}, shadow, false},
		{"last PATH entry of the environment counts", "app", []string{"PATH=/nonexistent", "PATH=" + filepath.Join(dir, "bin")}, exe, false},
		{"not executable", "notes", []string{"PATH=" + filepath.Join(dir, "bin")}, "", true},
		{"a directory is not a program", "app", []string{"PATH=" + filepath.Join(dir, "dirs")}, "", true},
		{"not in PATH", "app", []string{"PATH=/nonexistent"}, "", true},
		{"no PATH: only the working directory", "app", nil, "", true},
		{"with a slash: as given", exe, nil, exe, false},
		{"with a slash, missing", filepath.Join(dir, "bin/nope"), []string{"PATH=" + filepath.Join(dir, "bin")}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lookPath(tc.program, tc.env)
			if tc.missing {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("lookPath(%q) = %q, %v; want ErrNotFound", tc.program, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("lookPath(%q) = %q, %v; want %q", tc.program, got, err, tc.want)
			}
		})
	}
}
