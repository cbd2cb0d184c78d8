package localenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// isolatedEnv marks the re-executed child of RunIsolated.
const isolatedEnv = "REMOCAL_LOCALENV_ISOLATED"

// RunIsolated re-executes the current binary (same arguments, same
// environment plus a marker) in a new network namespace that has nothing but
// a loopback interface, forwarding stdio and signals, and returns the child's
// exit code. In the child it brings lo up and returns run(). Without root it
// just returns run(): tests needing root skip themselves there.
//
// This is what makes "cannot reach the real network" hold for a whole test
// binary: anything the code under test dials that is not loopback or inside
// a localenv pod (via a namespace it entered) fails with ENETUNREACH instead
// of quietly working, and no test can depend on or disturb the host network.
func RunIsolated(run func() int) int {
	if os.Getenv(isolatedEnv) == "1" {
		if err := loopbackUp(); err != nil {
			fmt.Fprintf(os.Stderr, "localenv: isolated child: %v\n", err)
			return 1
		}
		return run()
	}
	if MissingPrivileges() != "" {
		return run()
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "localenv: cannot re-execute in an isolated network namespace: %v\n", err)
		return 1
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), isolatedEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET,
		Pdeathsig:  syscall.SIGKILL,
	}
	// Registered before the child exists so no signal is lost in between;
	// SIGQUIT is included so `go test -timeout` stack dumps come from the
	// child, where the tests are.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "localenv: start isolated test process: %v\n", err)
		return 1
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		fmt.Fprintf(os.Stderr, "localenv: isolated test process: %v\n", err)
		return 1
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		fmt.Fprintf(os.Stderr, "localenv: isolated test process killed by %v\n", ws.Signal())
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}

// loopbackUp sets IFF_UP on lo with an ioctl, sparing the child an `ip` run.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}
