package target

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// Gateways returns the gateways of the target's routes (IPv4 and IPv6),
// read from its network namespace's view in /proc/PID/net. In a pod the
// default gateway is the host's end of the pod network: the address the
// node's own connections to the pod (the kubelet's probes) come from on
// bridge and router CNIs.
func (p *Process) Gateways() ([]netip.Addr, error) {
	var gws []netip.Addr
	v4, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/route", p.pid))
	if err != nil {
		return nil, fmt.Errorf("read the routes of target process %d: %w", p.pid, err)
	}
	gws = append(gws, parseRoute4(string(v4))...)
	// No IPv6 in the namespace is not an error.
	if v6, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/ipv6_route", p.pid)); err == nil {
		gws = append(gws, parseRoute6(string(v6))...)
	}
	return gws, nil
}

// parseRoute4 reads /proc/net/route: Iface Destination Gateway Flags ...,
// addresses in hex, in host byte order (little-endian here).
func parseRoute4(s string) []netip.Addr {
	var out []netip.Addr
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		b, err := hex.DecodeString(f[2])
		if err != nil || len(b) != 4 {
			continue
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], binary.LittleEndian.Uint32(b))
		if gw := netip.AddrFrom4(a); !gw.IsUnspecified() {
			out = append(out, gw)
		}
	}
	return out
}

// parseRoute6 reads /proc/net/ipv6_route: the fifth field is the next hop,
// 32 hex digits in network order.
func parseRoute6(s string) []netip.Addr {
	var out []netip.Addr
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		b, err := hex.DecodeString(f[4])
		if err != nil || len(b) != 16 {
			continue
		}
		if gw := netip.AddrFrom16([16]byte(b)); !gw.IsUnspecified() {
			out = append(out, gw)
		}
	}
	return out
}
