package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tmosquitto\nVmPeak:\t  20000 kB\nVmRSS:\t    6144 kB\nThreads:\t1\n"
	got, err := parseVmRSS([]byte(status))
	require.NoError(t, err)
	assert.Equal(t, int64(6144*1024), got)

	_, err = parseVmRSS([]byte("Name:\tkworker\n"))
	assert.Error(t, err, "no VmRSS line")
	_, err = parseVmRSS([]byte("VmRSS:\t12 MB\n"))
	assert.Error(t, err, "unknown unit")
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 250 and stime 50
	// ticks are fields 14 and 15.
	stat := "1234 (my (odd) broker) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 200"
	got, err := parseStatCPU([]byte(stat))
	require.NoError(t, err)
	assert.Equal(t, 3*time.Second, got)

	_, err = parseStatCPU([]byte("1234 (x) S 1 2"))
	assert.Error(t, err)
	_, err = parseStatCPU([]byte("no command"))
	assert.Error(t, err)
}

func TestReadProcUsageSelf(t *testing.T) {
	u, err := readProcUsage(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, u.RSS)
}

const tcpTable = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:075B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:075B 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 100 0 0 10 0
`

func TestListenInodes(t *testing.T) {
	assert.Equal(t, []string{"111"}, listenInodes([]byte(tcpTable), 1883), "the established socket is skipped")
	assert.Equal(t, []string{"333"}, listenInodes([]byte(tcpTable), 8080))
	assert.Empty(t, listenInodes([]byte(tcpTable), 1884))
	assert.Empty(t, listenInodes(nil, 1883))
}

func TestFindListener(t *testing.T) {
	root := t.TempDir()
	old := procRoot
	procRoot = root
	t.Cleanup(func() { procRoot = old })
	require.NoError(t, os.MkdirAll(filepath.Join(root, "net"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "net", "tcp"), []byte(tcpTable), 0o644))
	for pid, inode := range map[string]string{"42": "999", "77": "111"} {
		fd := filepath.Join(root, pid, "fd")
		require.NoError(t, os.MkdirAll(fd, 0o755))
		require.NoError(t, os.Symlink("socket:["+inode+"]", filepath.Join(fd, "3")))
		require.NoError(t, os.Symlink("/dev/null", filepath.Join(fd, "0")))
	}
	pid, err := findListener(1883)
	require.NoError(t, err)
	assert.Equal(t, 77, pid)

	_, err = findListener(1884)
	assert.ErrorIs(t, err, ErrNoBroker, "nothing listens")
	_, err = findListener(8080)
	assert.ErrorIs(t, err, ErrNoBroker, "a listener no process owns")
}

func TestParseSteal(t *testing.T) {
	stat := "cpu  1447484 26793 712043 1997189 22098 0 191404 105360 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"
	got, err := parseSteal([]byte(stat))
	require.NoError(t, err)
	assert.Equal(t, 1053600*time.Millisecond, got)

	_, err = parseSteal([]byte("cpu  1 2 3 4 5 6 7\n")) // a kernel before steal was counted
	assert.Error(t, err)
	_, err = parseSteal([]byte("intr 5 6\n"))
	assert.Error(t, err)
	_, err = parseSteal([]byte("cpu  1 2 3 4 5 6 7 x\n"))
	assert.Error(t, err)
}

func TestHostStealReadsProc(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc/stat")
	}
	a, err := hostSteal()
	require.NoError(t, err)
	b, err := hostSteal()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, b, a, "steal only grows")
}
