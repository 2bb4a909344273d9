package crash

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
)

// exitLimit bounds how long a broker may take to give up on a bad data
// directory.
const exitLimit = 10 * time.Second

// storeWithData runs the broker on a fresh data directory, leaves a
// persistent session and a retained message in it, and kills it (so part
// of the state lives only in the write-ahead log, as after a crash). It
// returns the server, stopped.
func storeWithData(t *testing.T) *server {
	t.Helper()
	srv := newServer(t)
	srv.Start()
	c, _ := mustDial(t, srv.Addr, connOpts{ClientID: "corrupt-sub"})
	c.mustSubscribe(t, codec.QoS1, "corrupt/#")
	c.disconnect()
	p, _ := mustDial(t, srv.Addr, connOpts{ClientID: "corrupt-pub", Clean: true})
	p.mustPublish(t, 1, codec.QoS1, "corrupt/r", "kept", true)
	p.Close()
	srv.Kill()
	return srv
}

// storeFiles lists the store's files, LOCK aside.
func storeFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var files []string
	for _, e := range entries {
		if !e.IsDir() && e.Name() != "LOCK" {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	require.NotEmpty(t, files)
	return files
}

func garbage(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestCorruptDataDirStopsStart: a data directory the broker cannot trust
// stops it at start, within seconds, with a non-zero exit and an error
// that says what is wrong; never a panic, never a fresh empty store in
// its place.
func TestCorruptDataDirStopsStart(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name string
		// prepare returns the -data-dir to use.
		prepare func(t *testing.T) string
		want    string // in the error output
	}{
		{"foreign files, no store", func(t *testing.T) string {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "photo.jpg"), garbage(rng, 4096), 0o600))
			return dir
		}, "data directory"},
		{"a file, not a directory", func(t *testing.T) string {
			f := filepath.Join(t.TempDir(), "data")
			require.NoError(t, os.WriteFile(f, []byte("x"), 0o600))
			return f
		}, "data directory"},
		{"every store file garbage", func(t *testing.T) string {
			srv := storeWithData(t)
			for _, f := range storeFiles(t, srv.DataDir) {
				st, err := os.Stat(f)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(f, garbage(rng, int(max(st.Size(), 64))), 0o600))
			}
			return srv.DataDir
		}, "data directory"},
		{"every store file truncated to half", func(t *testing.T) string {
			srv := storeWithData(t)
			for _, f := range storeFiles(t, srv.DataDir) {
				st, err := os.Stat(f)
				require.NoError(t, err)
				require.NoError(t, os.Truncate(f, st.Size()/2))
			}
			return srv.DataDir
		}, "data directory"},
		{"manifest garbage", func(t *testing.T) string {
			srv := storeWithData(t)
			ms, err := filepath.Glob(filepath.Join(srv.DataDir, "MANIFEST-*"))
			require.NoError(t, err)
			require.NotEmpty(t, ms)
			for _, m := range ms {
				require.NoError(t, os.WriteFile(m, garbage(rng, 512), 0o600))
			}
			return srv.DataDir
		}, "data directory"},
		{"CURRENT missing", func(t *testing.T) string {
			srv := storeWithData(t)
			require.NoError(t, os.Remove(filepath.Join(srv.DataDir, "CURRENT")))
			return srv.DataDir
		}, "data directory"},
		{"a record that does not decode", func(t *testing.T) string {
			srv := storeWithData(t)
			db, err := pebble.Open(srv.DataDir, &pebble.Options{Logger: quietLogger{}})
			require.NoError(t, err)
			// A session meta record (key "s\x00<client id>") of garbage.
			require.NoError(t, db.Set([]byte("s\x00victim"), []byte{1, 0xff, 0xff}, pebble.Sync))
			require.NoError(t, db.Close())
			return srv.DataDir
		}, "corrupt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.prepare(t)
			args := []string{"-allow-anonymous", "-mqtt.addr", freeAddr(t),
				"-ws.addr", "off", "-tls.addr", "off", "-wss.addr", "off", "-admin.addr", "off", "-data-dir", dir, "-log.format", "json"}
			code, out := runToExit(t, exitLimit, args...)
			t.Logf("exit %d: %s", code, strings.TrimSpace(out))
			assert.NotZero(t, code, "mqttd must not start on this data directory")
			assert.False(t, panicked(out), "a clear error, not a panic")
			assert.Contains(t, out, tc.want)
			// Not a silent reset either: a failed start leaves nothing
			// behind that would let the next start succeed on an empty
			// store.
			code, out = runToExit(t, exitLimit, args...)
			assert.NotZero(t, code, "a second start must fail the same way: %s", out)
		})
	}
}

// quietLogger drops pebble's own log lines in the test's direct use of
// pebble.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
