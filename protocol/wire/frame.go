package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Preamble starts every connection in both directions. It lets either side
// recognise a peer that is not remocal at all (a wrong port, an HTTP server)
// and say so, instead of misreading its bytes as a frame length.
const Preamble = "remocal\n"

// Envelope is one frame. Requests and their responses share ID; stream
// headers and handshake frames use ID 0.
type Envelope struct {
	ID    uint64          `json:"id,omitempty"`
	Type  string          `json:"type"`
	Body  json.RawMessage `json:"body,omitempty"`
	Error *Error          `json:"error,omitempty"`
}

// ErrNotRemocal means the peer did not send the preamble.
var ErrNotRemocal = errors.New("the peer is not speaking the remocal protocol (bad preamble); check the address points at a remocal agent")

// WritePreamble writes the preamble.
func WritePreamble(w io.Writer) error {
	_, err := io.WriteString(w, Preamble)
	return err
}

// ReadPreamble reads and checks the preamble.
func ReadPreamble(r io.Reader) error {
	buf := make([]byte, len(Preamble))
	if _, err := io.ReadFull(r, buf); err != nil {
		return fmt.Errorf("read preamble: %w", err)
	}
	if string(buf) != Preamble {
		return fmt.Errorf("%w (got %q)", ErrNotRemocal, buf)
	}
	return nil
}

// NewEnvelope wraps a message.
func NewEnvelope(id uint64, msg Message) (*Envelope, error) {
	if e, ok := msg.(*Error); ok {
		return &Envelope{ID: id, Type: TypeError, Error: e}, nil
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", msg.MessageType(), err)
	}
	return &Envelope{ID: id, Type: msg.MessageType(), Body: body}, nil
}

// ErrorEnvelope builds the error response to request id.
func ErrorEnvelope(id uint64, err error) *Envelope {
	return &Envelope{ID: id, Type: TypeError, Error: AsError(err)}
}

// AppendFrame appends env's frame encoding to buf.
func AppendFrame(buf []byte, env *Envelope) ([]byte, error) {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0)
	w := bytes.NewBuffer(buf)
	if err := json.NewEncoder(w).Encode(env); err != nil {
		return buf[:start], fmt.Errorf("encode %s frame: %w", env.Type, err)
	}
	buf = w.Bytes()
	buf = buf[:len(buf)-1] // drop the encoder's newline
	n := len(buf) - start - 4
	if n > MaxFrameSize {
		return buf[:start], Errorf(CodeTooLarge, "%s frame of %d bytes exceeds the %d byte limit", env.Type, n, MaxFrameSize)
	}
	binary.BigEndian.PutUint32(buf[start:], uint32(n))
	return buf, nil
}

// WriteEnvelope writes env as one frame with a single Write, so writers that
// share a stream need only serialise calls.
func WriteEnvelope(w io.Writer, env *Envelope) error {
	buf, err := AppendFrame(nil, env)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// WriteMessage wraps msg and writes it.
func WriteMessage(w io.Writer, id uint64, msg Message) error {
	env, err := NewEnvelope(id, msg)
	if err != nil {
		return err
	}
	return WriteEnvelope(w, env)
}

// ReadEnvelope reads one frame of at most max bytes. A clean EOF before the
// frame starts is returned as io.EOF; anything else that is cut short or
// malformed is an *Error with CodeInvalid.
func ReadEnvelope(r io.Reader, max int) (*Envelope, error) {
	payload, err := ReadFrame(r, max)
	if err != nil {
		return nil, err
	}
	return DecodeEnvelope(payload)
}

// ReadFrame reads one frame's payload without decoding it. Its errors mean
// the byte stream itself is broken (cut short or oversized), so a reader
// cannot continue past them; errors from DecodeEnvelope leave the stream in
// sync.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, Errorf(CodeInvalid, "truncated frame header: %v", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > uint32(max) {
		return nil, Errorf(CodeTooLarge, "frame of %d bytes exceeds the %d byte limit", n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, Errorf(CodeInvalid, "truncated frame: expected %d bytes: %v", n, err)
	}
	return buf, nil
}

// DecodeEnvelope parses a frame's payload.
func DecodeEnvelope(payload []byte) (*Envelope, error) {
	var env Envelope
	if err := json.Unmarshal(payload, &env); err != nil {
		return nil, Errorf(CodeInvalid, "malformed frame: %v", err)
	}
	if env.Type == "" {
		return nil, Errorf(CodeInvalid, "frame has no type")
	}
	if env.Type == TypeError && env.Error == nil {
		return nil, Errorf(CodeInvalid, "error frame without an error")
	}
	return &env, nil
}

// Decode returns the envelope's typed, validated body. An error envelope
// decodes to its *Error as the error result.
func (env *Envelope) Decode() (Message, error) {
	if env.Type == TypeError {
		if env.Error == nil {
			return nil, Errorf(CodeInvalid, "error frame without an error")
		}
		return nil, env.Error
	}
	newMsg, ok := registry[env.Type]
	if !ok {
		return nil, Errorf(CodeUnsupported, "unknown message type %q", env.Type)
	}
	msg := newMsg()
	body := env.Body
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, msg); err != nil {
		return nil, Errorf(CodeInvalid, "malformed %s body: %v", env.Type, err)
	}
	if v, ok := msg.(validator); ok {
		if err := v.Validate(); err != nil {
			return nil, Errorf(CodeInvalid, "invalid %s: %v", env.Type, err)
		}
	}
	return msg, nil
}

// DecodeAs decodes env into a body of the expected type T, turning an error
// envelope into its *Error and any other type into an invalid-response error.
func DecodeAs[T Message](env *Envelope) (T, error) {
	var zero T
	msg, err := env.Decode()
	if err != nil {
		return zero, err
	}
	t, ok := msg.(T)
	if !ok {
		return zero, Errorf(CodeInvalid, "expected a %T message, got %s", zero, env.Type)
	}
	return t, nil
}

// ReadMessage reads a frame and decodes it as T.
func ReadMessage[T Message](r io.Reader, max int) (T, error) {
	env, err := ReadEnvelope(r, max)
	if err != nil {
		var zero T
		return zero, err
	}
	return DecodeAs[T](env)
}
