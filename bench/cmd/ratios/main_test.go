package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func readSample(t *testing.T) *results {
	t.Helper()
	f, err := os.Open("testdata/sample.txt")
	require.NoError(t, err)
	defer f.Close()
	s := newResults()
	require.NoError(t, s.read(f))
	return s
}

func TestSplitProcs(t *testing.T) {
	tests := []struct {
		in   string
		want key
	}{
		{"Guard/streamsession-2", key{"Guard/streamsession", 2}},
		{"Guard/looplab-can-16", key{"Guard/looplab-can", 16}},
		{"Guard/looplab-can", key{"Guard/looplab-can", 1}},
		{"RedisPing/g=32-2", key{"RedisPing/g=32", 2}},
		{"RedisPing/g=32", key{"RedisPing/g=32", 1}},
		{"Lifecycle-", key{"Lifecycle-", 1}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, splitProcs(tt.in))
		})
	}
}

func TestMedian(t *testing.T) {
	s := readSample(t)
	tests := []struct {
		name  string
		procs int
		unit  string
		want  float64
		ok    bool
	}{
		{"Guard/streamsession", 0, "ns/op", 3, true}, // odd count: the middle one
		{"Guard/looplab-can", 0, "ns/op", 30, true},  // even count: the mean of the two middle ones
		{"Guard/streamsession", 2, "allocs/op", 0, true},
		{"OpenSessions/streamsession", 0, "B/session", 1600, true},
		{"LifecycleParallel/streamsession", 1, "ns/op", 2000, true},
		{"LifecycleParallel/streamsession", 0, "ns/op", 1000, true}, // 0: the highest GOMAXPROCS
		{"HTTPTask/bare", 1, "ns/op", 0, false},                     // the -v name line is not a result
		{"RedisPing/g=32", 0, "ns/op", 0, false},
		{"Guard/streamsession", 0, "MB/s", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.unit, func(t *testing.T) {
			got, ok := s.median(tt.name, tt.procs, tt.unit)
			assert.Equal(t, tt.ok, ok)
			assert.InDelta(t, tt.want, got, 1e-9)
		})
	}
}

func TestEvaluate(t *testing.T) {
	lines := evaluate(readSample(t))
	want := map[string]struct {
		value   float64
		verdict verdict
	}{
		"guard: Guard.Check time / looplab Can":                              {3.0 / 30, pass},
		"guard: allocs/op":                                                   {0, pass},
		"lifecycle: Manager time / looplab":                                  {1.5, pass},
		"lifecycle: allocs/op":                                               {29, pass},
		"open sessions: heap per session":                                    {1600, miss},
		"open sessions: goroutines":                                          {12, pass},
		"parallel lifecycle: ops/s -cpu 2 / -cpu 1":                          {2, reported},
		"HTTP task: throughput / bare handler":                               {100000.0 / 300000, miss},
		"Redis: acquire+release pairs/s / PINGs/s":                           {0, skip},
		"Redis: round trips per pair":                                        {0, skip},
		"Redis: session create+stop with WAIT 1 / without":                   {1.5, reported},
		"Redis: idle commands/s, 10,000 sessions on 2 nodes":                 {1.9, pass},
		"media: heap+stacks per pending offer":                               {0, skip},
		"media: pending offer / bare pion sender":                            {0, skip},
		"media: heap+stacks per connected session, its client peer included": {0, skip},
		"media: CPU per stream-second / bare pion sender, 100 streams":       {0, skip},
		"media: start → connected p50, loopback":                             {0, skip},
		"media: start → connected p99, loopback":                             {0, skip},
		"media: heap left per stopped session":                               {0, skip},
	}
	require.Len(t, lines, len(want))
	for _, l := range lines {
		t.Run(l.Goal, func(t *testing.T) {
			w, ok := want[l.Goal]
			require.True(t, ok, "unexpected goal %q", l.Goal)
			assert.Equal(t, w.verdict, l.Verdict)
			assert.InDelta(t, w.value, l.Value, 1e-9)
		})
	}
}

func TestPrintTable(t *testing.T) {
	var buf bytes.Buffer
	missed := printTable(&buf, evaluate(readSample(t)))
	assert.Equal(t, 2, missed)
	out := buf.String()
	assert.Contains(t, out, "open sessions: heap per session")
	assert.Contains(t, out, "1600 B")
	assert.Contains(t, out, "0.333×")
	assert.Contains(t, out, "1.9/s")
	assert.True(t, strings.HasSuffix(out, "6 PASS, 2 MISS, 9 SKIP, 2 REPORTED\n"), out)
	// Every row has its verdict in the same column.
	rows := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	col := strings.Index(rows[0], "verdict")
	for _, r := range rows[1 : len(rows)-1] {
		assert.Contains(t, []string{"PASS", "MISS", "SKIP", "REPORTED"}, string([]rune(r)[col:]), r)
	}
}

func TestIdleRedisGoal(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		verdict verdict
	}{
		{"BenchmarkRedisIdle/sessions=10000-2 1 30000000000 ns/op 1.833 cmds/s\n", 1.833, pass},
		{"BenchmarkRedisIdle/sessions=10000-2 1 30000000000 ns/op 50 cmds/s\n", 50, pass},
		{"BenchmarkRedisIdle/sessions=10000-2 1 30000000000 ns/op 7008 cmds/s\n", 7008, miss},
		{"BenchmarkRedisPing/g=32-2 1000 1000 ns/op\n", 0, skip},
	}
	for _, tt := range tests {
		s := newResults()
		require.NoError(t, s.read(strings.NewReader(tt.in)))
		var got *line
		for _, l := range evaluate(s) {
			if strings.HasPrefix(l.Goal, "Redis: idle commands/s") {
				got = &l
			}
		}
		require.NotNil(t, got)
		assert.Equal(t, tt.verdict, got.Verdict, tt.in)
		assert.InDelta(t, tt.want, got.Value, 1e-9, tt.in)
	}
}

func TestRatioOf(t *testing.T) {
	in := `BenchmarkA-2 1 1 ns/op
BenchmarkB-2 1 2 ns/op
BenchmarkA-2 1 4 ns/op
BenchmarkB-2 1 2 ns/op
BenchmarkA-2 1 9 ns/op
BenchmarkB-2 1 18 ns/op
BenchmarkC-2 1 8 ns/op
`
	s := newResults()
	require.NoError(t, s.read(strings.NewReader(in)))
	tests := []struct {
		name     string
		num, den string
		want     float64
		ok       bool
	}{
		// Paired by run: 1/2, 4/2, 9/18 → the median is 0.5 (the ratio of
		// the medians would be 4/2 = 2).
		{"paired", "A", "B", 0.5, true},
		// Counts differ: the ratio of the medians, 8/2.
		{"unpaired", "C", "B", 4, true},
		{"missing", "A", "D", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ratioOf(s, "ns/op", tt.num, 0, tt.den, 0)
			assert.Equal(t, tt.ok, ok)
			assert.InDelta(t, tt.want, got, 1e-9)
		})
	}
}
