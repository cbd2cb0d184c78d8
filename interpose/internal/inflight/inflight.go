// Package inflight records which seccomp notifications a supervisor has
// received and not yet answered, in memory it shares with its keeper.
//
// A notification the supervisor received is no longer pending in the
// kernel: if the supervisor dies before answering it, the keeper's receive
// never sees it and the calling thread waits forever. So the supervisor
// writes each notification ID into a shared table as it receives it, and
// the keeper, once it takes over, answers every ID in the table with
// CONTINUE. An ID that was answered already, or whose caller died, is
// refused by the kernel (ENOENT) and costs nothing: IDs are 64-bit and
// never reused by a listener, so the table need not be cleared eagerly.
//
// Slot 0 belongs to the notification loop, which overwrites it with every
// notification it receives: one store to shared memory on the hot path.
// A call handed to a goroutine takes a slot of its own before the loop
// receives the next notification, and gives it back once answered.
package inflight

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Slots is the table's capacity: the loop's slot and one per call that
// waits on the network at the same time.
const Slots = 4096

const size = Slots * 8

// Table is the supervisor's side of the shared table.
type Table struct {
	file  *os.File
	mem   []byte
	slots []atomic.Uint64

	mu     sync.Mutex
	free   []int32 // slots not held, as a stack
	closed bool
}

// New creates a table in a memfd, for File to pass to the keeper.
func New() (*Table, error) {
	fd, err := unix.MemfdCreate("remocal-inflight", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd for in-flight notifications: %w", err)
	}
	f := os.NewFile(uintptr(fd), "remocal-inflight")
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, err
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("map in-flight notifications: %w", err)
	}
	t := &Table{file: f, mem: mem, slots: unsafe.Slice((*atomic.Uint64)(unsafe.Pointer(&mem[0])), Slots)}
	t.free = make([]int32, 0, Slots-1)
	for i := Slots - 1; i >= 1; i-- {
		t.free = append(t.free, int32(i))
	}
	return t, nil
}

// File is the table, to hand to the keeper.
func (t *Table) File() *os.File { return t.file }

// Received records the notification the loop is handling now.
func (t *Table) Received(id uint64) { t.slots[0].Store(id) }

// Hold records a notification that outlives the loop's turn and returns
// its slot for Release; -1 if every slot is taken (the call is then
// unrecorded, as before this table existed).
func (t *Table) Hold(id uint64) int {
	t.mu.Lock()
	if len(t.free) == 0 || t.closed {
		t.mu.Unlock()
		return -1
	}
	i := t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	t.slots[i].Store(id)
	t.mu.Unlock()
	return int(i)
}

// Release frees a slot once its call has been answered.
func (t *Table) Release(slot int) {
	if slot <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.slots[slot].Store(0)
	t.free = append(t.free, int32(slot))
}

// Close unmaps the table; the keeper's copy of the memfd keeps its
// content. Hold and Received must not be called afterwards.
func (t *Table) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	unix.Munmap(t.mem)
	return t.file.Close()
}

// Pending reads the IDs recorded in a table passed as f: the keeper's side.
func Pending(f *os.File) ([]uint64, error) {
	buf := make([]byte, size)
	n, err := f.ReadAt(buf, 0)
	if n != size {
		return nil, fmt.Errorf("read in-flight notifications: %d bytes, %v", n, err)
	}
	var ids []uint64
	for i := 0; i < Slots; i++ {
		if id := binary.NativeEndian.Uint64(buf[8*i:]); id != 0 {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
