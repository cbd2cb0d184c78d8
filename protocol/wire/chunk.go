package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Direction tags a mirrored chunk with the way its bytes travelled on the
// original connection.
type Direction byte

const (
	// FromPeer: bytes the remote peer sent to the target (the request side).
	FromPeer Direction = 0
	// FromTarget: bytes the target's application sent back.
	FromTarget Direction = 1
)

func (d Direction) String() string {
	switch d {
	case FromPeer:
		return "from-peer"
	case FromTarget:
		return "from-target"
	}
	return fmt.Sprintf("direction(%d)", byte(d))
}

// MaxChunkSize bounds one mirrored chunk.
const MaxChunkSize = 64 << 10

// Chunk is a piece of a mirrored connection. On the wire: 1 byte direction,
// 4 bytes big-endian length, then the bytes.
type Chunk struct {
	Dir  Direction
	Data []byte
}

// AppendChunk appends c's encoding to buf.
func AppendChunk(buf []byte, c Chunk) []byte {
	buf = append(buf, byte(c.Dir))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(c.Data)))
	return append(buf, c.Data...)
}

// ReadChunk reads one chunk into a fresh buffer. A clean EOF between chunks
// is io.EOF.
func ReadChunk(r io.Reader) (Chunk, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return Chunk{}, io.EOF
		}
		return Chunk{}, Errorf(CodeInvalid, "truncated chunk header: %v", err)
	}
	dir := Direction(hdr[0])
	if dir != FromPeer && dir != FromTarget {
		return Chunk{}, Errorf(CodeInvalid, "unknown chunk direction %d", hdr[0])
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxChunkSize {
		return Chunk{}, Errorf(CodeTooLarge, "chunk of %d bytes exceeds the %d byte limit", n, MaxChunkSize)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return Chunk{}, Errorf(CodeInvalid, "truncated chunk: expected %d bytes: %v", n, err)
	}
	return Chunk{Dir: dir, Data: data}, nil
}

// MaxDatagramSize is the largest UDP payload over IPv4.
const MaxDatagramSize = 65507

// AppendDatagram appends a datagram's encoding (2 bytes big-endian length,
// then the payload) to buf. UDP streams use it so datagram boundaries
// survive the byte stream.
func AppendDatagram(buf, payload []byte) ([]byte, error) {
	if len(payload) > MaxDatagramSize {
		return buf, Errorf(CodeTooLarge, "datagram of %d bytes exceeds %d", len(payload), MaxDatagramSize)
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(payload)))
	return append(buf, payload...), nil
}

// ReadDatagram reads one datagram into buf, which must hold
// MaxDatagramSize bytes, and returns its length.
func ReadDatagram(r io.Reader, buf []byte) (int, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		return 0, Errorf(CodeInvalid, "truncated datagram header: %v", err)
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > MaxDatagramSize || n > len(buf) {
		return 0, Errorf(CodeTooLarge, "datagram of %d bytes exceeds the buffer", n)
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return 0, Errorf(CodeInvalid, "truncated datagram: expected %d bytes: %v", n, err)
	}
	return n, nil
}
