package keeper

import (
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// program is remocal-keeper, built from keeper.c by `make keeper`.
//
//go:embed remocal-keeper
var program []byte

// Name is the keeper's argv[0] and its name in ps.
const Name = "remocal-keeper"

// Start starts a keeper for listener, which waits until pipe (the read end
// of a pipe whose write end only the supervisor holds) reports end of
// file; table, if not nil, is the supervisor's in-flight table. The keeper
// gets its own process group, so that a Ctrl-C for the program does not
// take it down, and stderr for its one warning. self is the remocal
// binary, which runs the keeper if the embedded program cannot be run.
// The keeper is reaped whenever it exits; it may outlive the caller.
// Start returns its process ID.
func Start(self string, listener, pipe, table, stderr *os.File) (int, error) {
	files := []*os.File{listener, pipe}
	if table != nil {
		files = append(files, table)
	}
	args := make([]string, len(files))
	for i := range files {
		args[i] = strconv.Itoa(3 + i)
	}
	exe, err := embedded()
	if err == nil {
		// The memfd goes last, as descriptor 3+len(files): the kernel
		// opens it by that name in the child, and the keeper closes
		// every descriptor above its own.
		cmd := command("/proc/self/fd/"+strconv.Itoa(3+len(files)), append([]string{Name}, args...), append(files, exe), stderr)
		if err = cmd.Start(); err == nil {
			go cmd.Wait()
			return cmd.Process.Pid, nil
		}
	}
	slog.Debug("the small keeper cannot run here; the remocal binary keeps the programs instead", "err", err)
	cmd := command(self, append([]string{self, Arg}, args...), files, stderr)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start the keeper: %w", err)
	}
	go cmd.Wait()
	return cmd.Process.Pid, nil
}

func command(path string, argv []string, files []*os.File, stderr *os.File) *exec.Cmd {
	cmd := &exec.Cmd{Path: path, Args: argv, ExtraFiles: files, Stderr: stderr}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// embedded is the keeper program in a sealed memfd, read-only, created
// once per process and kept open (close-on-exec) for every keeper to come.
var embedded = sync.OnceValues(func() (*os.File, error) { return sealedCopy(program) })

// sealedCopy puts exe in a memfd that nobody can change any more, and
// returns it opened read-only: the kernel refuses to execute a file that
// is open for writing (ETXTBSY).
func sealedCopy(exe []byte) (*os.File, error) {
	const flags = unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate(Name, flags|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) { // before Linux 6.3, which added MFD_EXEC
		fd, err = unix.MemfdCreate(Name, flags)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd for the keeper: %w", err)
	}
	rw := os.NewFile(uintptr(fd), Name)
	defer rw.Close()
	if _, err := rw.Write(exe); err != nil {
		return nil, fmt.Errorf("write the keeper to its memfd: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		return nil, fmt.Errorf("seal the keeper's memfd: %w", err)
	}
	ro, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reopen the keeper's memfd read-only: %w", err)
	}
	return ro, nil
}
