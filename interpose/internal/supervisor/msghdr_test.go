package supervisor

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The iovec helpers read and write this process's own memory, as they do a
// supervised program's.
func TestGatherScatter(t *testing.T) {
	self := os.Getpid()
	a, b, empty := []byte("hello, "), []byte("world"), []byte{}
	iovs := []iovec{
		{uint64(uintptr(unsafe.Pointer(&a[0]))), uint64(len(a))},
		{uint64(uintptr(unsafe.Pointer(&empty))), 0},
		{uint64(uintptr(unsafe.Pointer(&b[0]))), uint64(len(b))},
	}
	got, err := gather(self, iovs, false)
	if err != nil || string(got) != "hello, world" {
		t.Fatalf("gather = %q, %v", got, err)
	}
	if capacity(iovs) != 12 {
		t.Errorf("capacity = %d, want 12", capacity(iovs))
	}
	if err := scatter(self, iovs, []byte("HELLO, WOR")); err != nil {
		t.Fatal(err)
	}
	if string(a) != "HELLO, " || string(b) != "WORld" {
		t.Errorf("after scatter: %q %q", a, b)
	}

	big := make([]byte, maxDatagram+1)
	bigIov := []iovec{{uint64(uintptr(unsafe.Pointer(&big[0]))), uint64(len(big))}}
	if _, err := gather(self, bigIov, false); !errors.Is(err, unix.EMSGSIZE) {
		t.Errorf("gather of a datagram over 64 KiB: %v, want EMSGSIZE", err)
	}
	if cut, err := gather(self, bigIov, true); err != nil || len(cut) != maxDatagram || !bytes.Equal(cut, big[:maxDatagram]) {
		t.Errorf("gather of a stream's data over 64 KiB: %d bytes, %v; want a short write of %d", len(cut), err, maxDatagram)
	}
}
