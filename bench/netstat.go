package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// listenOverflows reads TcpExt ListenOverflows from /proc/net/netstat: how
// often the kernel dropped a connection attempt because a listener's accept
// queue was full. The count covers the whole network namespace, not one
// listener. conns compares it before and after its connect phase: a
// broker whose listen backlog is below -conn-inflight loses SYNs, and each
// costs the client a one-second retransmission, which the connect rate
// would blame on the broker's speed.
func listenOverflows() (int64, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "net", "netstat"))
	if err != nil {
		return 0, fmt.Errorf("bench: listen overflows: %w", err)
	}
	return parseNetstat(b, "TcpExt:", "ListenOverflows")
}

// parseNetstat finds one counter in the /proc/net/netstat format: for each
// group a line of names, then a line of values, both starting with the
// group's name.
func parseNetstat(b []byte, group, name string) (int64, error) {
	lines := bytes.Split(b, []byte("\n"))
	for i := 0; i+1 < len(lines); i++ {
		names, values := bytes.Fields(lines[i]), bytes.Fields(lines[i+1])
		if len(names) == 0 || string(names[0]) != group || len(values) == 0 || string(values[0]) != group {
			continue
		}
		if len(names) != len(values) {
			return 0, fmt.Errorf("bench: netstat %s: %d names but %d values", group, len(names), len(values))
		}
		for k := 1; k < len(names); k++ {
			if string(names[k]) == name {
				v, err := strconv.ParseInt(string(values[k]), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("bench: netstat %s %s: %w", group, name, err)
				}
				return v, nil
			}
		}
		return 0, fmt.Errorf("bench: netstat %s has no %s", group, name)
	}
	return 0, fmt.Errorf("bench: netstat has no %s group", group)
}
