// Package memtrim lets a long-lived remocal process give back the pages of
// its own executable that starting it touched and running it does not use.
//
// A Go program's package initialisation runs code and reads type and
// function tables all over its executable, and the kernel maps up to 16
// cached neighbours of every page touched (fault-around): an idle remocal
// daemon had ≈35 MiB of its 80 MiB binary mapped, most of it never used
// again. Those pages are clean copies of the file, so dropping the
// process's mappings of them (MADV_DONTNEED on a read-only private file
// mapping) loses nothing: a page used later is mapped again from the page
// cache, or read from the file. MADV_RANDOM then keeps the kernel from
// mapping neighbours nobody asked for. Mapped executable pages are also
// what the kernel keeps longest under memory pressure; unmapped, the
// unused ones are ordinary cache it may reclaim.
package memtrim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ReleaseExecutable unmaps the pages of the running executable's read-only
// mappings from this process and turns off fault-around for them.
func ReleaseExecutable() error {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("release the executable's pages: %w", err)
	}
	return release(exe)
}

// release does it for the mappings of path. A mapping is left alone if it
// is writable or if any of its pages is no longer the file's (Anonymous in
// smaps: a private copy, such as relocations applied before the mapping
// was made read-only), because DONTNEED would discard what was written.
func release(path string) error {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return fmt.Errorf("release the executable's pages: %w", err)
	}
	defer f.Close()
	type mapping struct {
		lo, hi uint64
		anon   bool
	}
	var found []mapping
	cur := -1 // index in found of the mapping whose fields follow, or -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		fields := bytes.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if rest, ok := bytes.CutPrefix(line, []byte("Anonymous:")); ok {
			if cur >= 0 && string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte("kB")))) != "0" {
				found[cur].anon = true
			}
			continue
		}
		if bytes.HasSuffix(fields[0], []byte(":")) {
			continue // another field of the current mapping
		}
		// A mapping's header: start-end perms offset dev inode [path]
		cur = -1
		if len(fields) != 6 || string(fields[5]) != path {
			continue
		}
		perms := fields[1]
		if len(perms) != 4 || perms[1] != '-' || perms[3] != 'p' {
			continue
		}
		start, end, ok := bytes.Cut(fields[0], []byte("-"))
		lo, err1 := strconv.ParseUint(string(start), 16, 64)
		hi, err2 := strconv.ParseUint(string(end), 16, 64)
		if !ok || err1 != nil || err2 != nil || hi <= lo {
			continue
		}
		found = append(found, mapping{lo: lo, hi: hi})
		cur = len(found) - 1
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("release the executable's pages: %w", err)
	}
	for _, m := range found {
		if m.anon {
			continue
		}
		for _, advice := range []int{unix.MADV_RANDOM, unix.MADV_DONTNEED} {
			if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.lo), uintptr(m.hi-m.lo), uintptr(advice)); errno != 0 {
				return fmt.Errorf("release the executable's pages (madvise %d at %#x): %w", advice, m.lo, errno)
			}
		}
	}
	return nil
}
