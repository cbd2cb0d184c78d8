package cluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// ca is a certificate authority: its certificate and key.
type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
	der  []byte
}

func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newCA(cn string) (*ca, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &ca{cert: cert, key: key, der: der}, nil
}

// leaf is what a certificate is for.
type leaf struct {
	cn     string
	orgs   []string
	dns    []string
	ips    []string
	server bool
	client bool
	// validity is how long the certificate lasts (default two years).
	validity time.Duration
}

// issue signs a new key's certificate for l and returns both in PEM.
func (c *ca) issue(l leaf) (certPEM, keyPEM []byte, err error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	validity := l.validity
	if validity == 0 {
		validity = 2 * 365 * 24 * time.Hour
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: l.cn, Organization: l.orgs},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		DNSNames:     l.dns,
	}
	for _, ip := range l.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	if l.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if l.client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

func (c *ca) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der})
}

func (c *ca) keyPEM() ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(c.key.(*ecdsa.PrivateKey))
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// loadCA reads a CA this package wrote (stem.crt and stem.key in pkiDir).
func loadCA(stem string) (*ca, error) {
	crtPEM, err := os.ReadFile(pkiFile(stem + ".crt"))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(pkiFile(stem + ".key"))
	if err != nil {
		return nil, err
	}
	cb, _ := pem.Decode(crtPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("%s: not a PEM certificate and key (run make cluster-down && make cluster-up)", pkiFile(stem+".crt"))
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	return &ca{cert: cert, key: key, der: cb.Bytes}, nil
}

// pkiFile names a file in pkiDir.
func pkiFile(name string) string { return filepath.Join(pkiDir(), name) }

// client identities, each with a kubeconfig of its own.
var clientIdentities = []struct {
	name string // file stem and kubeconfig name
	cn   string
	orgs []string
}{
	{"admin", "remocal-admin", []string{"system:masters"}},
	{"controller-manager", "system:kube-controller-manager", nil},
	{"scheduler", "system:kube-scheduler", nil},
	{"kube-proxy", "system:kube-proxy", nil},
	{"kubelet", "system:node:" + NodeName, []string{"system:nodes"}},
}

// writePKI generates every key and certificate of the cluster and the
// kubeconfigs of its clients: a cluster CA; the apiserver's serving
// certificate; its client certificate towards kubelets; the kubelet's
// serving certificate; a front-proxy CA and client for API aggregation; the
// service-account signing key pair; and client certificates for the admin,
// the controller manager, the scheduler, kube-proxy and the kubelet.
func writePKI() error {
	if err := os.MkdirAll(pkiDir(), 0o700); err != nil {
		return err
	}
	clusterCA, err := newCA("remocal-cluster-ca")
	if err != nil {
		return err
	}
	frontCA, err := newCA("remocal-front-proxy-ca")
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.crt":             clusterCA.certPEM(),
		"front-proxy-ca.crt": frontCA.certPEM(),
	}
	if files["ca.key"], err = clusterCA.keyPEM(); err != nil {
		return err
	}
	if files["front-proxy-ca.key"], err = frontCA.keyPEM(); err != nil {
		return err
	}
	issue := func(c *ca, stem string, l leaf) error {
		crt, key, err := c.issue(l)
		if err != nil {
			return fmt.Errorf("issuing %s: %w", stem, err)
		}
		files[stem+".crt"], files[stem+".key"] = crt, key
		return nil
	}
	if err := issue(clusterCA, "apiserver", leaf{
		cn:     "kube-apiserver",
		dns:    []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + ClusterDomain, "localhost", NodeName},
		ips:    []string{NodeIP, APIServiceIP, "127.0.0.1"},
		server: true,
	}); err != nil {
		return err
	}
	if err := issue(clusterCA, "apiserver-kubelet-client", leaf{cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}, client: true}); err != nil {
		return err
	}
	if err := issue(clusterCA, "kubelet-server", leaf{cn: NodeName, dns: []string{NodeName}, ips: []string{NodeIP}, server: true}); err != nil {
		return err
	}
	if err := issue(frontCA, "front-proxy-client", leaf{cn: "front-proxy-client", client: true}); err != nil {
		return err
	}
	for _, id := range clientIdentities {
		if err := issue(clusterCA, id.name, leaf{cn: id.cn, orgs: id.orgs, client: true}); err != nil {
			return err
		}
	}
	saKey, err := newKey()
	if err != nil {
		return err
	}
	saDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return err
	}
	files["sa.key"] = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saDER})
	files["sa.pub"] = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub})
	for name, b := range files {
		if err := os.WriteFile(pkiFile(name), b, 0o600); err != nil {
			return err
		}
	}
	for _, id := range clientIdentities {
		kc := kubeconfig(id.name, files["ca.crt"], files[id.name+".crt"], files[id.name+".key"])
		if err := os.WriteFile(kubeconfigPath(id.name), kc, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func kubeconfigPath(name string) string {
	if name == "admin" {
		return adminKubeconfig()
	}
	return filepath.Join(pkiDir(), name+".kubeconfig")
}

// kubeconfig renders a kubeconfig with embedded credentials. JSON is YAML,
// so no YAML library is needed.
func kubeconfig(user string, caPEM, certPEM, keyPEM []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: remocal
  cluster:
    server: https://%s:%d
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: remocal
  context:
    cluster: remocal
    user: %s
    namespace: default
current-context: remocal
`, NodeIP, APIServerPort, b64(caPEM), user, b64(certPEM), b64(keyPEM), user))
}
