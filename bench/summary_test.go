package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// sample collects the figures of one sub-benchmark's last invocation.
type sample struct {
	name    string
	mib     int
	n       int
	metrics []string // in the order first added
	values  map[string][]float64
}

func (s *sample) add(metric string, v float64) {
	if s.values == nil {
		s.values = map[string][]float64{}
	}
	if _, ok := s.values[metric]; !ok {
		s.metrics = append(s.metrics, metric)
	}
	s.values[metric] = append(s.values[metric], v)
}

func (s *sample) mean(metric string) float64 {
	vs := s.values[metric]
	var sum float64
	for _, v := range vs {
		sum += v
	}
	return sum / float64(len(vs))
}

func (s *sample) minMax(metric string) (float64, float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range s.values[metric] {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return lo, hi
}

var (
	results = map[string]*sample{}
	order   []string
)

// printSummary prints one table per benchmarked size: every metric's mean,
// minimum and maximum over the iterations of the last invocation.
func printSummary(w io.Writer) {
	if len(order) == 0 {
		return
	}
	fmt.Fprintln(w, "\ngodwit dump/restore summary (mean, min, max over the iterations; MB = 10^6 bytes)")
	for _, name := range order {
		s := results[name]
		fmt.Fprintf(w, "\n%s victim (%d MiB non-zero anonymous memory), %d iteration(s):\n", name, s.mib, s.n)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "metric\tmean\tmin\tmax\t")
		for _, m := range s.metrics {
			lo, hi := s.minMax(m)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", m, num(s.mean(m)), num(lo), num(hi))
		}
		tw.Flush()
	}
	fmt.Fprintln(w, strings.Repeat("-", 60))
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
