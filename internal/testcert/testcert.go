package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Bundle is a throwaway CA with a server certificate for
// "localhost"/127.0.0.1/::1 and a client certificate (CN = ClientCN).
type Bundle struct {
	Dir            string // temp dir holding the PEM files below
	CAFile         string // ca.pem: the CA certificate
	CertFile       string // server.pem: the server certificate
	KeyFile        string // server-key.pem: the server's private key (PKCS#8)
	ClientCertFile string // client.pem: the client certificate
	ClientKeyFile  string // client-key.pem: the client's private key (PKCS#8)
	ClientCN       string // common name of the client certificate
	CAPool         *x509.CertPool
	ServerCert     tls.Certificate
	ClientCert     tls.Certificate

	CA *x509.Certificate // the parsed CA certificate
}

// New generates a CA, a server and a client certificate and writes them into
// t.TempDir(). It fails the test on any error.
func New(t testing.TB, clientCN string) *Bundle {
	t.Helper()
	b, err := generate(t.TempDir(), clientCN)
	if err != nil {
		t.Fatalf("testcert: %v", err)
	}
	return b
}

// ServerTLS returns a server configuration presenting the server certificate
// and verifying client certificates against the CA with the given policy.
func (b *Bundle) ServerTLS(clientAuth tls.ClientAuthType) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{b.ServerCert},
		ClientAuth:   clientAuth,
		ClientCAs:    b.CAPool,
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientTLS returns a client configuration trusting the CA, expecting server
// name "localhost", and presenting the client certificate when withCert.
func (b *Bundle) ClientTLS(withCert bool) *tls.Config {
	cfg := &tls.Config{
		RootCAs:    b.CAPool,
		ServerName: "localhost",
		MinVersion: tls.VersionTLS12,
	}
	if withCert {
		cfg.Certificates = []tls.Certificate{b.ClientCert}
	}
	return cfg
}

type keyPair struct {
	cert    *x509.Certificate
	der     []byte
	key     *ecdsa.PrivateKey
	keyDER  []byte
	tlsCert tls.Certificate
}

func generate(dir, clientCN string) (*Bundle, error) {
	now := time.Now()
	notBefore, notAfter := now.Add(-time.Hour), now.Add(24*time.Hour)

	ca, err := issue(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "mqttd test CA", Organization: []string{"mqttd tests"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}, nil)
	if err != nil {
		return nil, err
	}
	server, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost", Organization: []string{"mqttd tests"}},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}, ca)
	if err != nil {
		return nil, err
	}
	client, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: clientCN, Organization: []string{"mqttd tests"}},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca)
	if err != nil {
		return nil, err
	}

	b := &Bundle{
		Dir:            dir,
		CAFile:         filepath.Join(dir, "ca.pem"),
		CertFile:       filepath.Join(dir, "server.pem"),
		KeyFile:        filepath.Join(dir, "server-key.pem"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client-key.pem"),
		ClientCN:       clientCN,
		CAPool:         x509.NewCertPool(),
		ServerCert:     server.tlsCert,
		ClientCert:     client.tlsCert,
		CA:             ca.cert,
	}
	b.CAPool.AddCert(ca.cert)

	files := []struct {
		path, typ string
		der       []byte
	}{
		{b.CAFile, "CERTIFICATE", ca.der},
		{b.CertFile, "CERTIFICATE", server.der},
		{b.KeyFile, "PRIVATE KEY", server.keyDER},
		{b.ClientCertFile, "CERTIFICATE", client.der},
		{b.ClientKeyFile, "PRIVATE KEY", client.keyDER},
	}
	for _, f := range files {
		data := pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})
		if err := os.WriteFile(f.path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// issue creates a key and a certificate from tmpl, signed by parent (or
// self-signed when parent is nil).
func issue(tmpl *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signerKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	chain := [][]byte{der}
	if parent != nil {
		chain = append(chain, parent.der)
	}
	return &keyPair{
		cert:   cert,
		der:    der,
		key:    key,
		keyDER: keyDER,
		tlsCert: tls.Certificate{
			Certificate: chain,
			PrivateKey:  key,
			Leaf:        cert,
		},
	}, nil
}
