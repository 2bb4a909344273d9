package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// ErrReport is wrapped by the errors of ParseCases and ReadResults.
var ErrReport = errors.New("bench: report")

// Case is one row of a comparison between two brokers: a name (the
// results' "case"), what it measures, the Result key it compares, and the
// target ratio candidate/reference.
type Case struct {
	Name   string  // e.g. "fanin-q0"
	Title  string  // e.g. "fanin 8→1, QoS 0, delivered msgs/s"
	Metric string  // a Result JSON key, e.g. "delivered_per_sec"
	Op     string  // ">=" (higher is better) or "<=" (lower is better)
	Target float64 // the ratio candidate/reference the case must meet
	Args   string  // mqttbench arguments of the case, for the record
}

// ParseCases reads a case table: one case a line, fields separated by
// '|': name | title | metric | op | target | args. Blank lines and lines
// starting with '#' are skipped. Errors name the line and the field.
func ParseCases(r io.Reader) ([]Case, error) {
	var out []Case
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 6 {
			return nil, fmt.Errorf("%w: cases line %d: %d fields, want 6 (name|title|metric|op|target|args)",
				ErrReport, n, len(f))
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		c := Case{Name: f[0], Title: f[1], Metric: f[2], Op: f[3], Args: f[5]}
		if c.Name == "" || c.Metric == "" {
			return nil, fmt.Errorf("%w: cases line %d: name and metric are required", ErrReport, n)
		}
		if c.Op != ">=" && c.Op != "<=" {
			return nil, fmt.Errorf("%w: cases line %d: op %q, want >= or <=", ErrReport, n, c.Op)
		}
		t, err := strconv.ParseFloat(f[4], 64)
		if err != nil || t <= 0 {
			return nil, fmt.Errorf("%w: cases line %d: target %q, want a positive number", ErrReport, n, f[4])
		}
		c.Target = t
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: cases: %w", ErrReport, err)
	}
	return out, nil
}

// Record is one result line: the typed Result and its fields by JSON key.
type Record struct {
	*Result
	Fields map[string]any
}

// Metric returns the numeric field key; absent (omitted because zero) is 0.
func (r Record) Metric(key string) float64 {
	switch v := r.Fields[key].(type) {
	case float64:
		return v
	case bool:
		if v {
			return 1
		}
	}
	return 0
}

// ReadResults reads every line starting with ResultPrefix from r; other
// lines are skipped, so a whole log may be given.
func ReadResults(r io.Reader) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, ResultPrefix) {
			continue
		}
		res, err := ParseLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w: results line %d: %w", ErrReport, n, err)
		}
		fields := map[string]any{}
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, ResultPrefix)), &fields); err != nil {
			return nil, fmt.Errorf("%w: results line %d: %w", ErrReport, n, err)
		}
		out = append(out, Record{Result: res, Fields: fields})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: results: %w", ErrReport, err)
	}
	return out, nil
}

// ReportInput is everything WriteReport puts in the report.
type ReportInput struct {
	Title     string // heading; default "Benchmark: <candidate> vs <reference>"
	Candidate string // label of the broker under test, e.g. "mqttd"
	Reference string // label of the reference broker, e.g. "mosquitto"
	Runs      int    // runs planned per case and broker; 0: not stated
	Cases     []Case
	Results   []Record
	Machine   string // free text, shown verbatim
	Commands  string // the exact commands, shown verbatim
	Notes     string // free text after the table
}

// Stats summarises one metric of one broker in one case.
type Stats struct {
	N                int
	Median, Min, Max float64
}

func statsOf(vals []float64) Stats {
	if len(vals) == 0 {
		return Stats{}
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stats{N: len(s), Median: med, Min: s[0], Max: s[len(s)-1]}
}

// Compare returns the statistics of a case for both brokers, their ratio
// (candidate/reference medians; NaN when the reference is 0 or a side has
// no run) and whether the target is met.
func Compare(c Case, results []Record, candidate, reference string) (cand, ref Stats, ratio float64, met bool) {
	cand, ref = caseStats(results, c.Name, c.Metric, candidate, reference)
	ratio = math.NaN()
	if cand.N > 0 && ref.N > 0 && ref.Median != 0 {
		ratio = cand.Median / ref.Median
	}
	switch {
	case math.IsNaN(ratio):
	case c.Op == ">=":
		met = ratio >= c.Target
	default:
		met = ratio <= c.Target
	}
	return cand, ref, ratio, met
}

// caseStats is the statistics of metric over the runs of one case, per
// broker.
func caseStats(results []Record, caseName, metric, candidate, reference string) (cand, ref Stats) {
	var cv, rv []float64
	for _, r := range results {
		if r.Case != caseName {
			continue
		}
		switch r.Label {
		case candidate:
			cv = append(cv, r.Metric(metric))
		case reference:
			rv = append(rv, r.Metric(metric))
		}
	}
	return statsOf(cv), statsOf(rv)
}

// errorCounts sums the correctness counters of a broker's runs.
type errorCounts struct {
	runs, unclean               int
	lost, dup, reordered, other uint64
}

func countErrors(results []Record, label string) errorCounts {
	var e errorCounts
	for _, r := range results {
		if r.Label != label {
			continue
		}
		e.runs++
		if !r.Clean() {
			e.unclean++
		}
		e.lost += r.Lost
		e.dup += r.Duplicated
		e.reordered += r.Reordered
		e.other += r.Unexpected + r.Malformed + r.Unacked + r.Refused + r.ProtocolErrors + r.ConnErrors
	}
	return e
}

// WriteReport writes a Markdown report: the comparison table (median and
// min–max per broker, ratio, target, met?), a correctness row, the runs
// that were not clean, the machine and the commands.
func WriteReport(w io.Writer, in ReportInput) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	title := in.Title
	if title == "" {
		title = "Benchmark: " + in.Candidate + " vs " + in.Reference
	}
	p("# %s\n\n", title)
	p("Generated by `scripts/bench-compare.sh` from the `RESULT` lines of `cmd/mqttbench`. ")
	p("Each cell is the median of the runs, with the minimum and maximum below it; ")
	p("the ratio is %s's median over %s's. ", in.Candidate, in.Reference)
	if in.Runs > 0 {
		p("Every broker ran %d time(s) per case, a fresh process each run, alternating brokers.", in.Runs)
	}
	p("\n\n")
	p("| case | %s | %s | ratio | target | met? |\n", in.Candidate, in.Reference)
	p("| --- | ---: | ---: | ---: | :---: | :---: |\n")
	allMet := true
	for _, c := range in.Cases {
		cand, ref, ratio, met := Compare(c, in.Results, in.Candidate, in.Reference)
		allMet = allMet && met
		ratioText := "n/a"
		if !math.IsNaN(ratio) {
			ratioText = fmt.Sprintf("%.2f×", ratio)
		}
		p("| %s | %s | %s | %s | %s %g× | %s |\n", mdEscape(c.Title), cell(cand, c.Metric, in.Runs),
			cell(ref, c.Metric, in.Runs), ratioText, c.Op, c.Target, yesNo(met))
	}
	ce, re := countErrors(in.Results, in.Candidate), countErrors(in.Results, in.Reference)
	errMet := ce.runs > 0 && ce.lost+ce.dup+ce.reordered == 0
	allMet = allMet && errMet
	p("| lost / duplicated / reordered, all runs | %d / %d / %d | %d / %d / %d | | 0 | %s |\n",
		ce.lost, ce.dup, ce.reordered, re.lost, re.dup, re.reordered, yesNo(errMet))
	p("\n")
	if allMet {
		p("**Every target met.**\n\n")
	} else {
		p("**Not every target met.**\n\n")
	}
	if ce.other+re.other > 0 || ce.unclean+re.unclean > 0 {
		p("Other anomalies (unexpected, malformed, unacknowledged, refused, protocol and connection errors): ")
		p("%s %d in %d of %d runs, %s %d in %d of %d runs.\n\n", in.Candidate, ce.other, ce.unclean, ce.runs,
			in.Reference, re.other, re.unclean, re.runs)
	}
	if in.Notes != "" {
		p("%s\n\n", strings.TrimSpace(in.Notes))
	}
	writeSteal(p, in)
	p("Definitions: *delivered msgs/s* counts every delivery that arrived during the measurement window, ")
	p("summed over subscribers; *lost* counts messages published in the window that had not arrived when the ")
	p("drain after it ended (a backlog the broker has not delivered yet counts too); *p99 latency* is from the ")
	p("publisher's send time in the payload to the subscriber's read, for messages published in the window; ")
	p("*RSS per connection* is the broker's VmRSS growth divided by the connections; *connect rate* counts ")
	p("CONNECT, CONNACK, SUBSCRIBE and SUBACK per connection.\n\n")

	p("## Cases\n\n| case | metric | mqttbench arguments |\n| --- | --- | --- |\n")
	for _, c := range in.Cases {
		p("| %s | `%s` | `%s` |\n", c.Name, c.Metric, c.Args)
	}
	p("\n")

	var unclean []Record
	for _, r := range in.Results {
		if !r.Clean() {
			unclean = append(unclean, r)
		}
	}
	if len(unclean) > 0 {
		p("## Runs that were not clean\n\n")
		for _, r := range unclean {
			p("- %s, %s: lost %d, duplicated %d, reordered %d, unexpected %d, malformed %d, unacked %d, "+
				"refused %d, protocol errors %d, connection errors %d", r.Case, r.Label, r.Lost, r.Duplicated,
				r.Reordered, r.Unexpected, r.Malformed, r.Unacked, r.Refused, r.ProtocolErrors, r.ConnErrors)
			if len(r.Errors) > 0 {
				p("; first error: %s", mdEscape(r.Errors[0]))
			}
			p("\n")
		}
		p("\n")
	}
	if in.Machine != "" {
		p("## Machine\n\n```\n%s\n```\n\n", strings.TrimSpace(in.Machine))
	}
	if in.Commands != "" {
		p("## Commands\n\n```\n%s\n```\n", strings.TrimSpace(in.Commands))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell formats a median with its range, and the run count when runs are
// missing.
func cell(s Stats, metric string, runs int) string {
	if s.N == 0 {
		return "no run"
	}
	out := formatMetric(metric, s.Median)
	if s.N > 1 {
		out += "<br>" + formatMetric(metric, s.Min) + " – " + formatMetric(metric, s.Max)
	}
	if runs > 0 && s.N < runs {
		out += fmt.Sprintf("<br>(%d of %d runs)", s.N, runs)
	}
	return out
}

// formatMetric formats a value by the unit its key names.
func formatMetric(metric string, v float64) string {
	switch {
	case strings.HasSuffix(metric, "_us"):
		return us(v)
	case strings.HasSuffix(metric, "_bytes"):
		return fmt.Sprintf("%.0f B", v)
	case strings.HasSuffix(metric, "_per_sec"):
		return si(v) + "/s"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

// mdEscape keeps a text from breaking a table row.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// writeSteal writes, when the host withheld CPU time during any run, the
// median and range per case and broker: on a virtual machine it is the
// noise under every latency figure above.
func writeSteal(p func(string, ...any), in ReportInput) {
	seen := false
	for _, r := range in.Results {
		seen = seen || r.Metric("host_steal") > 0
	}
	if !seen {
		return
	}
	p("Host steal: CPU time the hypervisor withheld from this machine during each run's window, in cores ")
	p("(`host_steal`; 0.1 is a tenth of one CPU's time). Every wake-up of a halted virtual CPU waits for the ")
	p("host, and that wait lands in the latency figures of both brokers.\n\n")
	p("| case | %s | %s |\n| --- | ---: | ---: |\n", in.Candidate, in.Reference)
	for _, c := range in.Cases {
		cand, ref := caseStats(in.Results, c.Name, "host_steal", in.Candidate, in.Reference)
		p("| %s | %s | %s |\n", c.Name, stealCell(cand), stealCell(ref))
	}
	p("\n")
}

func stealCell(s Stats) string {
	switch {
	case s.N == 0:
		return "no run"
	case s.N == 1:
		return fmt.Sprintf("%.3f", s.Median)
	}
	return fmt.Sprintf("%.3f (%.3f – %.3f)", s.Median, s.Min, s.Max)
}
