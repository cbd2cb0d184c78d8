package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

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
