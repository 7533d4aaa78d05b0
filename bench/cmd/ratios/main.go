// Command ratios reads the raw output of the bench suite (go test -bench,
// any number of -count runs, several files concatenated) and prints the
// performance goals (see docs/performance.md) as ratios of benchmarks measured in that same output:
// each line with its measured value, its goal and PASS or MISS (REPORTED for a figure without a goal).
//
// A benchmark's value is the median of its runs (as benchstat reports
// it); a ratio of two benchmarks run equally often is the median of the
// ratios of their i-th runs (see ratioOf). A goal whose benchmarks are missing from the input (Redis skipped,
// a -bench filter) is printed as SKIP.
//
//	go run ./cmd/ratios out/latest.txt
//
// With no file it reads standard input. It exits 0 whatever the verdicts,
// unless -strict is given, in which case a MISS exits 1; it exits 2 on bad
// usage or an unreadable file.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

func main() {
	strict := flag.Bool("strict", false, "exit 1 when a goal is missed")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: ratios [-strict] [file ...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	set := newResults()
	if flag.NArg() == 0 {
		if err := set.read(os.Stdin); err != nil {
			fmt.Fprintln(os.Stderr, "ratios:", err)
			os.Exit(2)
		}
	}
	for _, name := range flag.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ratios:", err)
			os.Exit(2)
		}
		err = set.read(f)
		f.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "ratios:", name+":", err)
			os.Exit(2)
		}
	}
	lines := evaluate(set)
	missed := printTable(os.Stdout, lines)
	if *strict && missed > 0 {
		os.Exit(1)
	}
}

// key names one benchmark at one GOMAXPROCS: Name without the "Benchmark"
// prefix and without the "-N" suffix; Procs 1 when there was no suffix.
type key struct {
	Name  string
	Procs int
}

// results holds every value read, by benchmark and unit.
type results struct {
	values map[key]map[string][]float64
}

func newResults() *results { return &results{values: make(map[key]map[string][]float64)} }

// read adds the benchmark lines of r: "BenchmarkName[-N] iters (value
// unit)...". Every other line is ignored.
func (s *results) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		s.parseLine(sc.Text())
	}
	return sc.Err()
}

func (s *results) parseLine(line string) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 || !strings.HasPrefix(f[0], "Benchmark") {
		return
	}
	if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
		return
	}
	k := splitProcs(strings.TrimPrefix(f[0], "Benchmark"))
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return
		}
		if s.values[k] == nil {
			s.values[k] = make(map[string][]float64)
		}
		s.values[k][f[i+1]] = append(s.values[k][f[i+1]], v)
	}
}

// splitProcs splits the "-N" GOMAXPROCS suffix off a benchmark name.
func splitProcs(name string) key {
	i := strings.LastIndexByte(name, '-')
	if i < 0 || i == len(name)-1 {
		return key{name, 1}
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n <= 0 {
		return key{name, 1}
	}
	return key{name[:i], n}
}

// median returns the median of the unit's values of the benchmark at procs
// (0: the highest GOMAXPROCS measured, the machine's default), and false
// when there are none.
func (s *results) median(name string, procs int, unit string) (float64, bool) {
	vs := s.samples(name, procs, unit)
	if len(vs) == 0 {
		return 0, false
	}
	return medianOf(vs), true
}

// verdict is one goal's outcome.
type verdict int

const (
	skip     verdict = iota // a benchmark it needs is missing
	pass                    // the goal holds
	miss                    // the goal does not hold
	reported                // a figure without a goal: printed, never missed
)

func (v verdict) String() string { return [...]string{"SKIP", "PASS", "MISS", "REPORTED"}[v] }

// line is one printed goal.
type line struct {
	Goal     string // what is measured
	Measured string // the value, with its unit
	Target   string // the goal, with its comparison
	Verdict  verdict
	Value    float64 // the measured number (for tests)
}

// A goal computes one line from the results.
type goal struct {
	name   string
	target string
	// value returns the measured number and false when a benchmark is
	// missing.
	value func(s *results) (float64, bool)
	// ok says whether v meets the goal; nil for a figure that is only
	// reported.
	ok   func(v float64) bool
	show func(v float64) string
}

func ratio(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) + "×" }
func count(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }

// samples returns the unit's values of the benchmark at procs (0: the
// highest GOMAXPROCS measured), in the order they were read.
func (s *results) samples(name string, procs int, unit string) []float64 {
	if procs == 0 {
		for k := range s.values {
			if k.Name == name && k.Procs > procs {
				procs = k.Procs
			}
		}
	}
	return s.values[key{name, procs}][unit]
}

// ratioOf is num / den for one unit of two benchmarks. When both were run
// the same number of times, the i-th runs are paired (bench/run makes one
// run of each per pass, so a pair shares the machine's load at that moment)
// and the median of the per-pair ratios is returned; otherwise the ratio of
// the medians.
func ratioOf(s *results, unit string, numName string, numProcs int, denName string, denProcs int) (float64, bool) {
	num := s.samples(numName, numProcs, unit)
	den := s.samples(denName, denProcs, unit)
	if len(num) == 0 || len(den) == 0 {
		return 0, false
	}
	if len(num) == len(den) {
		rs := make([]float64, 0, len(num))
		for i := range num {
			if den[i] == 0 {
				return 0, false
			}
			rs = append(rs, num[i]/den[i])
		}
		return medianOf(rs), true
	}
	d := medianOf(den)
	if d == 0 {
		return 0, false
	}
	return medianOf(num) / d, true
}

// medianOf returns the median of vs (not empty).
func medianOf(vs []float64) float64 {
	vs = slices.Clone(vs)
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}

func med(name string, procs int, unit string) func(*results) (float64, bool) {
	return func(s *results) (float64, bool) { return s.median(name, procs, unit) }
}

// goals are the performance goals, in the order of docs/performance.md. A throughput ratio is the
// inverse of the ns/op ratio (ops/s = 1e9 / ns/op).
var goals = []goal{
	{
		name: "guard: Guard.Check time / looplab Can", target: "≤ 0.1×",
		value: func(s *results) (float64, bool) {
			return ratioOf(s, "ns/op", "Guard/streamsession", 0, "Guard/looplab-can", 0)
		},
		ok: func(v float64) bool { return v <= 0.1 }, show: ratio,
	},
	{
		name: "guard: allocs/op", target: "= 0",
		value: med("Guard/streamsession", 0, "allocs/op"),
		ok:    func(v float64) bool { return v == 0 }, show: count,
	},
	{
		name: "lifecycle: Manager time / looplab", target: "≤ 1.5×",
		value: func(s *results) (float64, bool) {
			return ratioOf(s, "ns/op", "Lifecycle/streamsession", 0, "Lifecycle/looplab", 0)
		},
		ok: func(v float64) bool { return v <= 1.5 }, show: ratio,
	},
	{
		name: "lifecycle: allocs/op", target: "≤ 35",
		value: med("Lifecycle/streamsession", 0, "allocs/op"),
		ok:    func(v float64) bool { return v <= 35 }, show: count,
	},
	{
		name: "open sessions: heap per session", target: "≤ 1536 B (1.5 KiB)",
		value: med("OpenSessions/streamsession", 0, "B/session"),
		ok:    func(v float64) bool { return v <= 1536 },
		show:  func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + " B" },
	},
	{
		name: "open sessions: goroutines", target: "< 50",
		value: med("OpenSessions/streamsession", 0, "goroutines"),
		ok:    func(v float64) bool { return v < 50 }, show: count,
	},
	{
		// Reported, not a goal: a 2-core machine shows little, and the plain
		// concurrency the core keeps is worth more than this figure.
		name: "parallel lifecycle: ops/s -cpu 2 / -cpu 1", target: "reported",
		value: func(s *results) (float64, bool) {
			return ratioOf(s, "ns/op", "LifecycleParallel/streamsession", 1, "LifecycleParallel/streamsession", 2)
		},
		show: ratio,
	},
	{
		name: "HTTP task: throughput / bare handler", target: "≥ 0.5×",
		value: func(s *results) (float64, bool) {
			return ratioOf(s, "ns/op", "HTTPTask/bare", 0, "HTTPTask/streamsession", 0)
		},
		ok: func(v float64) bool { return v >= 0.5 }, show: ratio,
	},
	{
		name: "Redis: acquire+release pairs/s / PINGs/s", target: "≥ 0.4×",
		value: func(s *results) (float64, bool) {
			return ratioOf(s, "ns/op", "RedisPing/g=32", 0, "RedisAcquireRelease/g=32", 0)
		},
		ok: func(v float64) bool { return v >= 0.4 }, show: ratio,
	},
	{
		// At most one round trip per call, fewer when calls that wait together
		// share a script. Connections the pool opens during a run add a few
		// setup commands: 2.01 allows one per hundred pairs.
		name: "Redis: round trips per pair", target: "≤ 2 (one per call at most; ≤ 2.01)",
		value: med("RedisAcquireRelease/g=32", 0, "roundtrips/op"),
		ok:    func(v float64) bool { return v <= 2.01 },
		show:  func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) },
	},
	{
		// Reported, not a goal: what redis_wait_replicas 1 (a WAIT after the
		// writes that create and end a session) costs against none, with
		// one replica on the same machine.
		name: "Redis: session create+stop with WAIT 1 / without", target: "reported",
		value: func(s *results) (float64, bool) {
			return ratioOf(s, "ns/op", "RedisWait/wait=1", 0, "RedisWait/wait=0", 0)
		},
		show: ratio,
	},
	{
		// O(nodes), not O(sessions): an idle session costs Redis nothing.
		name: "Redis: idle commands/s, 10,000 sessions on 2 nodes", target: "≤ 50",
		value: med("RedisIdle/sessions=10000", 0, "cmds/s"),
		ok:    func(v float64) bool { return v <= 50 },
		show:  func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + "/s" },
	},
	{
		name: "media: heap+stacks per pending offer", target: "≤ 96 KiB",
		value: med("MediaPendingOffer/streamsession", 0, "B/offer"),
		ok:    func(v float64) bool { return v <= 96*1024 }, show: kib,
	},
	{
		name: "media: pending offer / bare pion sender", target: "reported",
		value: func(s *results) (float64, bool) {
			return ratioOf(s, "B/offer", "MediaPendingOffer/streamsession", 0, "MediaPendingOffer/bare", 0)
		},
		show: ratio,
	},
	{
		// The client peer runs in the benchmark's process: it is counted.
		name: "media: heap+stacks per connected session, its client peer included", target: "≤ 600 KiB",
		value: med("MediaConnected/streamsession", 0, "B/session"),
		ok:    func(v float64) bool { return v <= 600*1024 }, show: kib,
	},
	{
		name: "media: CPU per stream-second / bare pion sender, 100 streams", target: "≤ 1.2×",
		value: func(s *results) (float64, bool) {
			return ratioOf(s, "cpu-ms/stream-s", "MediaStream/streamsession", 0, "MediaStream/bare", 0)
		},
		ok: func(v float64) bool { return v <= 1.2 }, show: ratio,
	},
	{
		name: "media: start → connected p50, loopback", target: "≤ 100 ms",
		value: med("MediaConnected/streamsession", 0, "p50-ms"),
		ok:    func(v float64) bool { return v <= 100 }, show: millis,
	},
	{
		name: "media: start → connected p99, loopback", target: "reported",
		value: med("MediaConnected/streamsession", 0, "p99-ms"), show: millis,
	},
	{
		name: "media: heap left per stopped session", target: "≤ 2 KiB",
		value: med("MediaStopped", 0, "B/stopped"),
		ok:    func(v float64) bool { return v <= 2*1024 }, show: kib,
	},
}

func kib(v float64) string    { return strconv.FormatFloat(v/1024, 'f', 1, 64) + " KiB" }
func millis(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + " ms" }

// evaluate computes every goal's line.
func evaluate(s *results) []line {
	out := make([]line, 0, len(goals))
	for _, g := range goals {
		l := line{Goal: g.name, Target: g.target, Measured: "-"}
		if v, ok := g.value(s); ok && !math.IsNaN(v) {
			l.Value, l.Measured = v, g.show(v)
			switch {
			case g.ok == nil:
				l.Verdict = reported
			case g.ok(v):
				l.Verdict = pass
			default:
				l.Verdict = miss
			}
		}
		out = append(out, l)
	}
	return out
}

// printTable writes the lines as an aligned table with a summary and returns
// the number of goals missed.
func printTable(w io.Writer, lines []line) (missed int) {
	wg, wm, wt := len("goal"), len("measured"), len("target")
	for _, l := range lines {
		wg = max(wg, runeLen(l.Goal))
		wm = max(wm, runeLen(l.Measured))
		wt = max(wt, runeLen(l.Target))
	}
	row := func(a, b, c, d string) {
		fmt.Fprintf(w, "%s  %s  %s  %s\n", pad(a, wg), pad(b, wm), pad(c, wt), d)
	}
	row("goal", "measured", "target", "verdict")
	var n [4]int
	for _, l := range lines {
		row(l.Goal, l.Measured, l.Target, l.Verdict.String())
		n[l.Verdict]++
	}
	fmt.Fprintf(w, "%d PASS, %d MISS, %d SKIP, %d REPORTED\n", n[pass], n[miss], n[skip], n[reported])
	return n[miss]
}

func runeLen(s string) int { return len([]rune(s)) }

func pad(s string, w int) string { return s + strings.Repeat(" ", w-runeLen(s)) }
