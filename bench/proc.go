package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoBroker is returned when no process is found listening on a port.
var ErrNoBroker = errors.New("bench: no process listens on the broker's port")

// procRoot is /proc; tests point it at a fixture.
var procRoot = "/proc"

// userHZ is the unit of utime and stime in /proc/PID/stat. Linux exports
// USER_HZ = 100 on every architecture it runs on.
const userHZ = 100

// procUsage is a sample of a process's memory and CPU time.
type procUsage struct {
	RSS int64         // resident set size in bytes (VmRSS)
	CPU time.Duration // user + system time so far
}

// readProcUsage reads VmRSS from /proc/PID/status and utime+stime from
// /proc/PID/stat.
func readProcUsage(pid int) (procUsage, error) {
	var u procUsage
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return u, fmt.Errorf("bench: broker memory: %w", err)
	}
	if u.RSS, err = parseVmRSS(status); err != nil {
		return u, fmt.Errorf("bench: broker memory of pid %d: %w", pid, err)
	}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return u, fmt.Errorf("bench: broker CPU: %w", err)
	}
	if u.CPU, err = parseStatCPU(stat); err != nil {
		return u, fmt.Errorf("bench: broker CPU of pid %d: %w", pid, err)
	}
	return u, nil
}

// parseVmRSS returns the VmRSS line of a /proc/PID/status file in bytes.
func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS: unexpected format %q", rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kb << 10, nil
	}
	return 0, errors.New("VmRSS: no such line (a kernel thread or a zombie?)")
}

// parseStatCPU returns utime+stime of a /proc/PID/stat file. The command
// name (field 2) may hold spaces and parentheses, so fields are counted from
// the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat: utime/stime: %w", err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// findListener returns the process with a TCP socket listening on port
// (IPv4 or IPv6, any address), other than this process.
func findListener(port int) (int, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		data, err := os.ReadFile(filepath.Join(procRoot, f))
		if err != nil {
			continue // no IPv6 is fine
		}
		for _, ino := range listenInodes(data, port) {
			inodes[ino] = true
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("%w: port %d", ErrNoBroker, port)
	}
	procs, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, fmt.Errorf("bench: find the broker: %w", err)
	}
	self := os.Getpid()
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(procRoot, p.Name(), "fd"))
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(procRoot, p.Name(), "fd", fd.Name()))
			if err != nil {
				continue
			}
			if ino, ok := strings.CutPrefix(link, "socket:["); ok && inodes[strings.TrimSuffix(ino, "]")] {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: port %d has a listening socket but no readable process owns it", ErrNoBroker, port)
}

// listenInodes returns the inodes of the sockets in a /proc/net/tcp(6)
// table that listen (state 0A) on port.
func listenInodes(table []byte, port int) []string {
	var out []string
	lines := strings.Split(string(table), "\n")
	for _, line := range lines[min(1, len(lines)):] { // the first line is a heading
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		out = append(out, f[9])
	}
	return out
}

// selfCPU returns the CPU time this process has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hostSteal returns the time the hypervisor has kept this machine's CPUs
// from running so far (the steal column of /proc/stat, all CPUs), or an
// error where the kernel does not count it. Over loopback every message
// wakes a CPU that may have gone idle; on a virtual machine whose idle
// CPUs halt, each such wake-up waits for the host to run that CPU again,
// and that wait is steal. It shows up in both brokers' latency tails.
func hostSteal() (time.Duration, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, "stat"))
	if err != nil {
		return 0, err
	}
	return parseSteal(data)
}

// parseSteal reads the steal field (the 8th number of the "cpu" line) of
// a /proc/stat file.
func parseSteal(stat []byte) (time.Duration, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) == 0 || f[0] != "cpu" {
		return 0, errors.New("stat: no cpu line first")
	}
	if len(f) < 9 {
		return 0, fmt.Errorf("stat: %d fields on the cpu line, no steal column", len(f))
	}
	v, err := strconv.ParseInt(f[8], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: steal: %w", err)
	}
	return time.Duration(v) * time.Second / userHZ, nil
}
