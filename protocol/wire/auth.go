package wire

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
)

// Authentication (protocol 1.1). An agent created by a client (or, later, an
// operator) holds a secret key K that its creator gave it and that nobody
// who merely reaches its port knows. The handshake proves K both ways
// without sending it:
//
//	client → agent: Hello{Nonce: Nc}
//	agent → client: Welcome{Nonce: Na, Proof: HMAC(K, AgentProofLabel ‖ transcript)}
//	client → agent: Auth{Proof: HMAC(K, ClientProofLabel ‖ transcript)}
//	agent → client: AuthResult, or Error (permission_denied) and close
//
// The transcript binds both nonces and what each side said about itself, so
// a proof is good for one connection only and cannot be reflected (the two
// labels differ). A client that holds K checks the agent's proof before it
// sends anything else, and refuses a Welcome without one (no downgrade).
//
// An agent without a key (a local agent behind a 0600 unix socket, whose
// permissions are the credential) sends neither nonce nor proof and does
// not list CapAuth.

const (
	// NonceSize is the length of Hello.Nonce and Welcome.Nonce.
	NonceSize = 32
	// MinKeySize is the shortest key an agent accepts.
	MinKeySize = 16

	// AgentProofLabel and ClientProofLabel separate the two proofs.
	AgentProofLabel  = "remocal agent v1"
	ClientProofLabel = "remocal client v1"
)

// ParseKey reads a key as it is stored (a Secret's value, a key file): its
// bytes without surrounding whitespace, at least MinKeySize of them.
func ParseKey(data []byte) ([]byte, error) {
	key := bytes.TrimSpace(data)
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("the key has %d bytes; it needs at least %d", len(key), MinKeySize)
	}
	return key, nil
}

// NewKey returns a fresh key: 32 random bytes in base64url (43 characters,
// safe in an environment variable or a file).
func NewKey() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return []byte(base64.RawURLEncoding.EncodeToString(b))
}

// NewNonce returns NonceSize random bytes.
func NewNonce() []byte {
	b := make([]byte, NonceSize)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	return b
}

// AgentProof is what an agent holding key puts in w.Proof.
func AgentProof(key []byte, h *Hello, w *Welcome) []byte {
	return proof(key, AgentProofLabel, h, w)
}

// ClientProof is what a client holding key sends in Auth.Proof.
func ClientProof(key []byte, h *Hello, w *Welcome) []byte {
	return proof(key, ClientProofLabel, h, w)
}

// CheckProof compares a received proof with the expected one in constant
// time.
func CheckProof(want, got []byte) bool {
	return len(got) == sha256.Size && hmac.Equal(want, got)
}

// proof is HMAC-SHA256(key, label ‖ field ‖ field ...) over the transcript's
// fields, each prefixed by its length as a big-endian uint32: the hello's
// nonce, client name and session; the welcome's nonce, client ID and target
// name.
func proof(key []byte, label string, h *Hello, w *Welcome) []byte {
	m := hmac.New(sha256.New, key)
	field := func(b []byte) { writeField(m, b) }
	field([]byte(label))
	field(h.Nonce)
	field([]byte(h.Client.Name))
	field([]byte(h.Client.Session))
	field(w.Nonce)
	field([]byte(w.ClientID))
	field([]byte(w.Target.Name))
	return m.Sum(nil)
}

func writeField(h hash.Hash, b []byte) {
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
	h.Write(b)
}
