package main

import (
	"fmt"
	"net/netip"
	"syscall"
	"time"
	"unsafe"
)

// benchUDP times n round trips to the UDP echo server at addr with raw
// system calls, so that each mode makes exactly the calls it names.
func benchUDP(n int, how, addr string) ([]time.Duration, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	to := &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	if how == "send" {
		if err := syscall.Connect(fd, to); err != nil {
			return nil, err
		}
	}
	msg, buf := []byte("ping"), make([]byte, 64)
	durs := make([]time.Duration, n)
	for i := range durs {
		start := time.Now()
		switch how {
		case "send":
			// send(2) is sendto without an address.
			_, _, e := syscall.Syscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&msg[0])), uintptr(len(msg)), 0, 0, 0)
			if e != 0 {
				return nil, e
			}
			_, err = syscall.Read(fd, buf)
		case "sendto":
			if err = syscall.Sendto(fd, msg, 0, to); err == nil {
				_, _, err = syscall.Recvfrom(fd, buf, 0)
			}
		case "sendmsg":
			if _, err = syscall.SendmsgN(fd, msg, nil, to, 0); err == nil {
				_, _, _, _, err = syscall.Recvmsg(fd, buf, nil, 0)
			}
		default:
			return nil, fmt.Errorf("bench-udp: no mode %q", how)
		}
		if err != nil {
			return nil, err
		}
		durs[i] = time.Since(start)
	}
	return durs, nil
}
