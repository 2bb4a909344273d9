package auth

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
)

// makeCerts runs scripts/certs.sh into a new directory.
func makeCerts(t *testing.T, cns ...string) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed (Debian: apt-get install openssl); scripts/certs.sh needs it")
	}
	dir := t.TempDir()
	out, err := exec.Command("../scripts/certs.sh", append([]string{dir}, cns...)...).CombinedOutput()
	require.NoError(t, err, "certs.sh: %s", out)
	return dir
}

// TestCertsScriptMTLS: the certificates of scripts/certs.sh work for a TLS
// server with required client certificates on every loopback name, and the
// verified client certificate's CN logs the client in as that user.
func TestCertsScriptMTLS(t *testing.T) {
	dir := makeCerts(t, "client1", "meter-7")
	for _, f := range []string{"ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "client1.pem", "client1-key.pem", "meter-7.pem", "meter-7-key.pem"} {
		st, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, f)
		if strings.HasSuffix(f, "-key.pem") {
			assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "%s is private", f)
		}
	}
	other := makeCerts(t, "client1") // another CA, same CN

	d, _ := newTestDB(t, Config{CertCNAsUsername: true})
	require.NoError(t, d.AddUser("client1", "", []Grant{g("meter", "pub")}))

	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	require.NoError(t, err)
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	serverCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
	require.NoError(t, err)

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	require.NoError(t, err)
	defer ln.Close()
	users := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			user := "handshake failed"
			if tc.Handshake() == nil {
				cn := tc.ConnectionState().PeerCertificates[0].Subject.CommonName
				u, err := d.Authenticate(nil, nil, cn)
				if err != nil {
					u = "refused " + cn
				}
				user = u
				_, _ = tc.Write([]byte{1})
			}
			users <- user
			tc.Close()
		}
	}()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)

	dial := func(certDir, cn, serverName string) error {
		cert, err := tls.LoadX509KeyPair(filepath.Join(certDir, cn+".pem"), filepath.Join(certDir, cn+"-key.pem"))
		require.NoError(t, err)
		c, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", port), &tls.Config{
			Certificates: []tls.Certificate{cert},
			RootCAs:      pool,
			ServerName:   serverName,
		})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = io.ReadFull(c, make([]byte, 1)) // TLS 1.3: the server's verdict arrives with data
		return err
	}

	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		require.NoError(t, dial(dir, "client1", name), name)
		assert.Equal(t, "client1", <-users, name)
	}
	require.NoError(t, dial(dir, "meter-7", "localhost"))
	assert.Equal(t, "refused meter-7", <-users, "a CN that is no user does not log in")
	assert.True(t, d.Allow("client1", "meter/1", broker.AccessPublish))

	assert.Error(t, dial(other, "client1", "localhost"), "a client certificate of another CA")
	assert.Equal(t, "handshake failed", <-users)
	assert.Error(t, dial(dir, "client1", "example.com"), "a name the server certificate does not have")
	<-users
}

func TestCertsScriptRejectsBadCN(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed (Debian: apt-get install openssl); scripts/certs.sh needs it")
	}
	for _, cn := range []string{"bad cn", "a/b", "ca", "server"} {
		dir := t.TempDir()
		out, err := exec.Command("../scripts/certs.sh", dir, cn).CombinedOutput()
		assert.Error(t, err, "CN %q: %s", cn, out)
		assert.NoFileExists(t, filepath.Join(dir, "ca.pem"), "nothing made for CN %q", cn)
	}
}
