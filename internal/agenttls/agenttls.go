// Package agenttls makes and checks the TLS identity of an agent that the
// operator reaches over the pod network. The operator creates each agent's
// certificate and key itself, hands them to the agent (a Secret) and pins
// that very certificate when it dials: no CA, no host names (the agent's
// pod IP is unknown when the certificate is made), and a certificate
// anyone else made, even one signed by a trusted CA, is refused.
//
// TLS encrypts the stream (it carries files, environment and traffic);
// the agent's HMAC key proof (protocol/wire auth.go) still runs inside it
// and proves the client to the agent.
package agenttls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Validity is how long a certificate made by New is valid: far longer
// than an agent lives (agents end after an idle TTL), so it never expires
// under a running agent.
const Validity = 5 * 365 * 24 * time.Hour

// New makes a self-signed ECDSA P-256 certificate and its key, PEM
// encoded, named name (the agent's Job, for humans reading it).
func New(name string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate the agent's TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("generate a certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"remocal agent"}},
		NotBefore:    now.Add(-time.Hour), // clock skew between operator and node
		NotAfter:     now.Add(Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create the agent's certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode the agent's TLS key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// ServerConfig is the agent's TLS configuration from its certificate and
// key files.
func ServerConfig(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load the agent's TLS certificate and key (%s, %s): %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}, nil
}

// ErrNotPinned says the peer presented another certificate than the one
// pinned: not the agent the operator created.
var ErrNotPinned = errors.New("the agent presented another TLS certificate than the one it was created with")

// PinnedConfig is a client configuration that accepts exactly the
// certificate certPEM and nothing else.
func PinnedConfig(certPEM []byte) (*tls.Config, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("the agent's pinned certificate is not a PEM CERTIFICATE")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return nil, fmt.Errorf("the agent's pinned certificate: %w", err)
	}
	pinned := block.Bytes
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The chain and name checks are replaced by the pin below: the
		// certificate is self-signed and has no name to check.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], pinned) {
				return ErrNotPinned
			}
			return nil
		},
	}, nil
}
