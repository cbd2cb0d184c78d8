package target

import (
	"net/netip"
	"slices"
	"testing"
)

func TestParseRoutes(t *testing.T) {
	// A pod's /proc/net/route on a bridge CNI: default via 10.244.0.1,
	// and the pod subnet on eth0 without a gateway.
	v4 := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t0100F40A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"eth0\t0000F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
	if got, want := parseRoute4(v4), []netip.Addr{netip.MustParseAddr("10.244.0.1")}; !slices.Equal(got, want) {
		t.Errorf("IPv4 gateways %v, want %v", got, want)
	}
	v6 := "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n" +
		"fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n"
	if got, want := parseRoute6(v6), []netip.Addr{netip.MustParseAddr("fe80::1")}; !slices.Equal(got, want) {
		t.Errorf("IPv6 gateways %v, want %v", got, want)
	}
}
