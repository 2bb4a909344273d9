package testcert

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// handshake runs a TLS handshake over loopback TCP and returns the server's
// view of the connection state and both sides' errors.
func handshake(t *testing.T, server, client *tls.Config) (tls.ConnectionState, error, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()

	type result struct {
		state tls.ConnectionState
		err   error
	}
	res := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Server(c, server)
		err = tc.Handshake()
		if err == nil {
			// TLS 1.3 reports a rejected client certificate only on read.
			_, err = tc.Write([]byte{1})
		}
		res <- result{tc.ConnectionState(), err}
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(c, client)
	cerr := tc.Handshake()
	if cerr == nil {
		var b [1]byte
		_, cerr = tc.Read(b[:])
	}
	r := <-res
	return r.state, r.err, cerr
}

func TestHandshake(t *testing.T) {
	b := New(t, "device-42")

	tests := []struct {
		name       string
		clientAuth tls.ClientAuthType
		withCert   bool
		wantErr    bool
		wantCN     string
	}{
		{"no client auth", tls.NoClientCert, false, false, ""},
		{"required with cert", tls.RequireAndVerifyClientCert, true, false, "device-42"},
		{"required without cert", tls.RequireAndVerifyClientCert, false, true, ""},
		{"optional without cert", tls.VerifyClientCertIfGiven, false, false, ""},
		{"optional with cert", tls.VerifyClientCertIfGiven, true, false, "device-42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, serr, cerr := handshake(t, b.ServerTLS(tt.clientAuth), b.ClientTLS(tt.withCert))
			if tt.wantErr {
				assert.Error(t, serr)
				assert.Error(t, cerr)
				return
			}
			require.NoError(t, serr)
			require.NoError(t, cerr)
			if tt.wantCN == "" {
				assert.Empty(t, state.PeerCertificates)
				return
			}
			require.NotEmpty(t, state.PeerCertificates)
			assert.Equal(t, tt.wantCN, state.PeerCertificates[0].Subject.CommonName)
		})
	}
}

func TestFiles(t *testing.T) {
	b := New(t, "file-client")

	server, err := tls.LoadX509KeyPair(b.CertFile, b.KeyFile)
	require.NoError(t, err)
	client, err := tls.LoadX509KeyPair(b.ClientCertFile, b.ClientKeyFile)
	require.NoError(t, err)
	caPEM, err := os.ReadFile(b.CAFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))

	srvCfg := &tls.Config{Certificates: []tls.Certificate{server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	cliCfg := &tls.Config{Certificates: []tls.Certificate{client}, RootCAs: pool, ServerName: "localhost"}
	state, serr, cerr := handshake(t, srvCfg, cliCfg)
	require.NoError(t, serr)
	require.NoError(t, cerr)
	require.NotEmpty(t, state.PeerCertificates)
	assert.Equal(t, "file-client", state.PeerCertificates[0].Subject.CommonName)
	assert.Equal(t, "file-client", b.ClientCN)
}

func TestServerNames(t *testing.T) {
	b := New(t, "c")
	leaf := b.ServerCert.Leaf
	require.NotNil(t, leaf)
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: b.CAPool})
		assert.NoError(t, err, host)
	}
	_, err := leaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: b.CAPool})
	assert.Error(t, err)

	now := time.Now()
	assert.True(t, leaf.NotBefore.Before(now.Add(-50*time.Minute)))
	assert.True(t, leaf.NotAfter.After(now.Add(23*time.Hour)))

	// A second bundle has its own CA: it does not trust the first.
	other := New(t, "c")
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: other.CAPool})
	assert.Error(t, err)
}
