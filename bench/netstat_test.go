package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseNetstat(t *testing.T) {
	const fixture = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n" +
		"TcpExt: 3 772 774\n" +
		"IpExt: InNoRoutes ListenOverflows\n" +
		"IpExt: 0 9\n"
	v, err := parseNetstat([]byte(fixture), "TcpExt:", "ListenOverflows")
	require.NoError(t, err)
	assert.Equal(t, int64(772), v)
	v, err = parseNetstat([]byte(fixture), "IpExt:", "ListenOverflows")
	require.NoError(t, err)
	assert.Equal(t, int64(9), v, "the counter of the group asked for")

	for _, bad := range []string{
		"",
		"TcpExt: ListenOverflows\n",        // no values line
		"TcpExt: ListenDrops\nTcpExt: 1\n", // no such counter
		"TcpExt: ListenOverflows ListenDrops\nTcpExt: 1\n", // short values line
		"TcpExt: ListenOverflows\nTcpExt: x\n",
	} {
		_, err := parseNetstat([]byte(bad), "TcpExt:", "ListenOverflows")
		assert.Error(t, err, "%q", bad)
	}
}

func TestListenOverflows(t *testing.T) {
	_, err := listenOverflows() // this machine's: any value, but readable
	require.NoError(t, err)
}
