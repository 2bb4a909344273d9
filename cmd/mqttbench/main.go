// Command mqttbench is the load generator of mqttd: it runs one benchmark
// scenario against an MQTT broker on a loopback address, checks every
// message and prints a summary and a one-line machine-readable result.
//
//	mqttbench -scenario fanin -publishers 8 -qos 1 -addr 127.0.0.1:1883
//	mqttbench -scenario kafka -qos 1 -kafka-brokers 127.0.0.1:9092 -admin-token T
//	mqttbench report -cases cases.txt -results results.log > RESULTS.md
//	mqttbench freeport
//
// Progress lines go to stderr once a second; the summary and the line
// starting with "RESULT " (JSON) go to stdout. See package bench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mqttd/mqttd/bench"
	"github.com/mqttd/mqttd/codec"
)

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1 // bad arguments or the run could not be measured
	exitUnclean = 2 // -strict and the run lost, duplicated or reordered messages
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "report":
			return report(args[1:], stdout, stderr)
		case "freeport":
			return freePort(stdout, stderr)
		}
	}
	cfg, strict, quiet, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "mqttbench:", err)
		return exitError
	}
	progress := stderr
	if quiet {
		progress = io.Discard
	}
	res, err := bench.Run(ctx, cfg, progress)
	if err != nil {
		fmt.Fprintln(stderr, "mqttbench:", err)
		return exitError
	}
	if err := res.WriteSummary(stdout); err != nil {
		return exitError
	}
	fmt.Fprintln(stdout, res.Line())
	if strict && !res.Clean() {
		return exitUnclean
	}
	return exitOK
}

func parseFlags(args []string, stderr io.Writer) (cfg bench.Config, strict, quiet bool, err error) {
	cfg = bench.DefaultConfig()
	fs := flag.NewFlagSet("mqttbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mqttbench -scenario NAME [flags]\n"+
			"       mqttbench report -cases FILE -results FILE [flags]\n"+
			"       mqttbench freeport\n\nscenarios:\n  %s\n\nflags:\n",
			strings.Join(bench.ScenarioHelp(), "\n  "))
		fs.PrintDefaults()
	}
	version := "3.1.1"
	qos := 0
	fs.StringVar(&cfg.Scenario, "scenario", "", "scenario: "+strings.Join(bench.Scenarios(), ", "))
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "broker address (loopback only)")
	fs.StringVar(&version, "version", version, "MQTT version: 3.1.1 or 5")
	fs.IntVar(&qos, "qos", qos, "QoS of publishes and subscriptions: 0, 1 or 2")
	fs.IntVar(&cfg.Size, "size", cfg.Size, "payload bytes (at least 16: index, sequence, timestamp)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measurement window (conns: idle hold time)")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "traffic before the window, not counted")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "wait after the window for late deliveries before counting losses")
	fs.IntVar(&cfg.Inflight, "inflight", cfg.Inflight, "unacknowledged QoS 1/2 messages per publisher (over 3.1.1 a broker with a smaller limit, e.g. mosquitto's max_inflight_messages 20, may drop QoS 2 messages behind a plain PUBREC: set its limit to at least this)")
	fs.IntVar(&cfg.QoS0Window, "qos0-window", cfg.QoS0Window, "QoS 0: stay at most N messages ahead of the slowest subscriber (0: no flow control)")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "total publish rate, msgs/s across publishers (0: as fast as possible)")
	fs.IntVar(&cfg.Publishers, "publishers", cfg.Publishers, "fanin: publishers")
	fs.IntVar(&cfg.Subscribers, "subscribers", cfg.Subscribers, "fanout: subscribers")
	fs.IntVar(&cfg.Pairs, "pairs", cfg.Pairs, "pairs: publisher/subscriber pairs")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "conns: idle subscribed connections")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "connections set up concurrently (conns: goroutines reading back the verification messages)")
	fs.IntVar(&cfg.ConnInflight, "conn-inflight", cfg.ConnInflight, "conns: connect+subscribe handshakes in flight at once on the tool's epoll engine")
	pipeline := !cfg.NoPipeline
	fs.BoolVar(&pipeline, "pipeline", pipeline, "conns: send CONNECT and SUBSCRIBE in one write, before the CONNACK (false: wait for the CONNACK, then SUBSCRIBE; every broker sees the same client)")
	fs.IntVar(&cfg.Spread, "spread", cfg.Spread, "source addresses 127.0.0.1..N used in turn (past ~28k connections)")
	fs.BoolVar(&cfg.Persistent, "persistent", cfg.Persistent, "subscribers keep a persistent session (measures a durable store's cost)")
	fs.DurationVar(&cfg.KeepAlive, "keepalive", cfg.KeepAlive, "MQTT keepalive in whole seconds (0: off)")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", cfg.ConnectTimeout, "bound on each dial, CONNACK and SUBACK")
	fs.StringVar(&cfg.Username, "username", "", "CONNECT username")
	fs.StringVar(&cfg.Password, "password", "", "CONNECT password")
	fs.StringVar(&cfg.TopicPrefix, "topic-prefix", cfg.TopicPrefix, "first topic level(s) of every topic")
	fs.IntVar(&cfg.PID, "pid", 0, "broker pid for its memory and CPU (0: the process listening on -addr)")
	fs.StringVar(&cfg.Label, "label", "", "broker name recorded in the result")
	fs.StringVar(&cfg.Case, "case", "", "case name recorded in the result")
	fs.StringVar(&cfg.KafkaBrokers, "kafka-brokers", "", "kafka: Kafka bootstrap servers host:port,... (loopback) to read the bridged records from")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", cfg.AdminAddr, "kafka: the broker's admin API, where the parent topic (-topic-prefix) is registered")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "kafka: bearer token of the admin API")
	fs.BoolVar(&cfg.KafkaOrdered, "kafka-ordered", false, "kafka: an ordered parent topic (orderMsg2mq-<topic-prefix>)")
	fs.StringVar(&cfg.KafkaVerify, "kafka-verify", cfg.KafkaVerify, "kafka: when to read the records back: live (during the run, on the tool's CPU) or after (once the window is over, same checks; arrival times from the Kafka timestamps)")
	fs.BoolVar(&strict, "strict", false, "exit 2 when a message was lost, duplicated or reordered, or any check failed")
	fs.BoolVar(&quiet, "quiet", false, "no progress lines")
	if err = fs.Parse(args); err != nil {
		return cfg, false, false, err
	}
	if fs.NArg() > 0 {
		return cfg, false, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.Scenario == "" {
		fs.Usage()
		return cfg, false, false, errors.New("-scenario is required")
	}
	if cfg.Version, err = bench.ParseVersion(version); err != nil {
		return cfg, false, false, err
	}
	if qos < 0 || qos > 2 {
		return cfg, false, false, fmt.Errorf("-qos %d: want 0, 1 or 2", qos)
	}
	cfg.QoS = codec.QoS(qos)
	cfg.NoPipeline = !pipeline
	return cfg, strict, quiet, cfg.Validate()
}

// report writes the comparison report of bench-compare.
func report(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mqttbench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var in bench.ReportInput
	var casesFile, resultsFile, machineFile, commandsFile, notesFile string
	fs.StringVar(&casesFile, "cases", "", "case table: name | title | metric | op | target | args, one a line")
	fs.StringVar(&resultsFile, "results", "", "file with the RESULT lines (other lines are skipped)")
	fs.StringVar(&machineFile, "machine", "", "text file describing the machine")
	fs.StringVar(&commandsFile, "commands", "", "text file with the exact commands run")
	fs.StringVar(&notesFile, "notes", "", "text file added after the table")
	fs.StringVar(&in.Title, "title", "", "report heading")
	fs.StringVar(&in.Candidate, "candidate", "mqttd", "label of the broker under test")
	fs.StringVar(&in.Reference, "reference", "mosquitto", "label of the reference broker")
	fs.IntVar(&in.Runs, "runs", 0, "runs planned per case and broker (0: not stated)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitError
	}
	if casesFile == "" || resultsFile == "" {
		fmt.Fprintln(stderr, "mqttbench report: -cases and -results are required")
		return exitError
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "mqttbench report:", err)
		return exitError
	}
	f, err := os.Open(casesFile)
	if err != nil {
		return fail(err)
	}
	in.Cases, err = bench.ParseCases(f)
	f.Close()
	if err != nil {
		return fail(err)
	}
	if f, err = os.Open(resultsFile); err != nil {
		return fail(err)
	}
	in.Results, err = bench.ReadResults(f)
	f.Close()
	if err != nil {
		return fail(err)
	}
	for _, t := range []struct {
		file string
		dst  *string
	}{{machineFile, &in.Machine}, {commandsFile, &in.Commands}, {notesFile, &in.Notes}} {
		if t.file == "" {
			continue
		}
		b, err := os.ReadFile(t.file)
		if err != nil {
			return fail(err)
		}
		*t.dst = string(b)
	}
	if err := bench.WriteReport(stdout, in); err != nil {
		return fail(err)
	}
	return exitOK
}

// freePort prints a TCP port free on 127.0.0.1 at the time of the call.
func freePort(stdout, stderr io.Writer) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "mqttbench freeport:", err)
		return exitError
	}
	defer l.Close()
	fmt.Fprintln(stdout, l.Addr().(*net.TCPAddr).Port)
	return exitOK
}
