package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/test/latency"
)

// benchNewConn sends N GETs, each on a new connection with a 5 s dial
// timeout, and prints the latency of those that succeeded and the count
// of those that failed ("newconn-failed F").
func benchNewConn(param string) error {
	n, url, _ := strings.Cut(param, "+")
	count, _ := strconv.Atoi(n)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	var durs []time.Duration
	failed := 0
	var first error
	for range count {
		start := time.Now()
		resp, err := c.Get(url)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
			continue
		}
		durs = append(durs, time.Since(start))
	}
	if len(durs) > 0 {
		fmt.Println("newconn-ns", latency.Summary(durs))
	}
	fmt.Printf("newconn-failed %d of %d (first: %v)\n", failed, count, first)
	return nil
}

// echo connects to param, sends "hello from Go", half-closes, reads until
// the server closes and prints the reply, the descriptor's flags and the
// connection's addresses (getsockname, getpeername).
func echo(param string) error {
	c, err := net.Dial("tcp", param)
	if err != nil {
		return err
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	if _, err := io.WriteString(tc, "hello from Go"); err != nil {
		return err
	}
	if err := tc.CloseWrite(); err != nil {
		return err
	}
	reply, err := io.ReadAll(tc)
	if err != nil {
		return err
	}
	fmt.Printf("reply %s\n", reply)
	raw, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var fl, fdfl int
	raw.Control(func(fd uintptr) {
		fl, _ = unix.FcntlInt(fd, unix.F_GETFL, 0)
		fdfl, _ = unix.FcntlInt(fd, unix.F_GETFD, 0)
	})
	fmt.Printf("flags nonblock=%d cloexec=%d\n", bit(fl&unix.O_NONBLOCK), bit(fdfl&unix.FD_CLOEXEC))
	fmt.Printf("local=%s peer=%s\n", c.LocalAddr(), c.RemoteAddr())
	return nil
}

func bit(v int) int {
	if v != 0 {
		return 1
	}
	return 0
}
