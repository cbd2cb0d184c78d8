package supervisor

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/seccomp"
)

// The layouts of struct msghdr, struct iovec and struct mmsghdr on x86_64,
// read from and written to the program's memory.

const (
	msghdrSize  = 56
	mmsghdrSize = 64 // a msghdr, its msg_len, padding
	iovecSize   = 16
	maxIovecs   = 1024 // UIO_MAXIOV: the kernel refuses more
	// maxDatagram bounds what the supervisor copies for one datagram:
	// UDP's own limit.
	maxDatagram = 65535
	maxControl  = 4096
)

// Offsets of msghdr's fields.
const (
	msgNameOff       = 0
	msgNamelenOff    = 8
	msgIovOff        = 16
	msgIovlenOff     = 24
	msgControlOff    = 32
	msgControllenOff = 40
	msgFlagsOff      = 48
)

type msghdr struct {
	name       uint64
	namelen    uint32
	iov        uint64
	iovlen     uint64
	control    uint64
	controllen uint64
}

func parseMsghdr(b []byte) msghdr {
	le := binary.LittleEndian
	return msghdr{
		name: le.Uint64(b[msgNameOff:]), namelen: le.Uint32(b[msgNamelenOff:]),
		iov: le.Uint64(b[msgIovOff:]), iovlen: le.Uint64(b[msgIovlenOff:]),
		control: le.Uint64(b[msgControlOff:]), controllen: le.Uint64(b[msgControllenOff:]),
	}
}

type iovec struct{ base, len uint64 }

// readIovecs reads the program's iovec array.
func readIovecs(tid int, addr, n uint64) ([]iovec, error) {
	if n > maxIovecs {
		return nil, unix.EMSGSIZE
	}
	if n == 0 {
		return nil, nil
	}
	raw := make([]byte, n*iovecSize)
	if err := seccomp.ReadMemory(tid, addr, raw); err != nil {
		return nil, err
	}
	iovs := make([]iovec, n)
	for i := range iovs {
		iovs[i] = iovec{binary.LittleEndian.Uint64(raw[i*iovecSize:]), binary.LittleEndian.Uint64(raw[i*iovecSize+8:])}
	}
	return iovs, nil
}

// gather copies what the iovecs hold, at most maxDatagram bytes: beyond,
// a datagram is EMSGSIZE, as the kernel says for UDP, and a stream's data
// is cut short, as by a short write.
func gather(tid int, iovs []iovec, stream bool) ([]byte, error) {
	var total uint64
	for _, v := range iovs {
		total += v.len
	}
	if total > maxDatagram && !stream {
		return nil, unix.EMSGSIZE
	}
	out := make([]byte, 0, min(total, maxDatagram))
	for _, v := range iovs {
		n := min(v.len, uint64(maxDatagram-len(out)))
		if n == 0 {
			continue
		}
		chunk := make([]byte, n)
		if err := seccomp.ReadMemory(tid, v.base, chunk); err != nil {
			return nil, err
		}
		out = append(out, chunk...)
	}
	return out, nil
}

// capacity is how many bytes the iovecs can take, bounded by maxDatagram.
func capacity(iovs []iovec) int {
	var total uint64
	for _, v := range iovs {
		total += v.len
	}
	return int(min(total, maxDatagram))
}

// scatter writes data across the iovecs.
func scatter(tid int, iovs []iovec, data []byte) error {
	for _, v := range iovs {
		if len(data) == 0 {
			return nil
		}
		n := min(uint64(len(data)), v.len)
		if err := seccomp.WriteMemory(tid, v.base, data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}
