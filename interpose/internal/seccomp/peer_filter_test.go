package seccomp

import (
	"slices"
	"testing"
)

// TestPeerOptionAddsAcceptOnlyWithIncoming: sessions without incoming
// traffic must not pay a notification per accept or getsockname.
func TestPeerOptionAddsAcceptOnlyWithIncoming(t *testing.T) {
	count := func(nrs []int, nr int) int {
		n := 0
		for _, v := range nrs {
			if v == nr {
				n++
			}
		}
		return n
	}
	without := AllOptions
	without.Peer = false
	for _, nr := range []int{SysAccept, SysAccept4, SysGetsockname} {
		if slices.Contains(without.Notified(), nr) {
			t.Errorf("system call %d notified without Peer", nr)
		}
		if count(AllOptions.Notified(), nr) != 1 {
			t.Errorf("system call %d notified %d times with Peer, want once", nr, count(AllOptions.Notified(), nr))
		}
	}
	if n := count(AllOptions.Notified(), SysGetpeername); n != 1 {
		t.Errorf("getpeername notified %d times with Outgoing and Peer, want once", n)
	}
	if !slices.Contains(Options{Peer: true}.Notified(), SysGetpeername) {
		t.Error("Peer alone must notify getpeername")
	}
}
