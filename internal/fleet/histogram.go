package fleet

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"sort"
	"time"
)

// subBuckets is the number of linear buckets per power of two: the relative
// error of a quantile is at most 1/subBuckets (6.25%).
const subBuckets = 16

// numBuckets covers every non-negative int64 nanosecond count.
const numBuckets = 64 * subBuckets

// Histogram is a log-linear latency histogram. The zero value is empty and
// ready to use. It is not safe for concurrent use: each goroutine keeps its
// own and Merge combines them.
type Histogram struct {
	counts [numBuckets]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

func bucketOf(ns int64) int {
	if ns < subBuckets {
		if ns < 0 {
			return 0
		}
		return int(ns)
	}
	e := bits.Len64(uint64(ns)) - 5 // keep the top five bits: 16..31
	return (e+1)*subBuckets + int(uint64(ns)>>e) - subBuckets
}

// bucketUpper is the largest value that falls into bucket i.
func bucketUpper(i int) time.Duration {
	if i < subBuckets {
		return time.Duration(i)
	}
	e := i/subBuckets - 1
	m := i%subBuckets + subBuckets
	return time.Duration((uint64(m+1) << e) - 1)
}

// Record adds one observation.
func (h *Histogram) Record(d time.Duration) {
	h.counts[bucketOf(int64(d))]++
	h.n++
	h.sum += d
	if d > h.max {
		h.max = d
	}
}

// Merge adds every observation of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest observation.
func (h *Histogram) Max() time.Duration { return h.max }

// Mean returns the average observation, 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Quantile returns an upper bound, within 6.25%, of the q-quantile
// (0 <= q <= 1), never more than Max; 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	if rank >= h.n {
		rank = h.n - 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen > rank {
			return min(bucketUpper(i), h.max)
		}
	}
	return h.max
}

// String summarises the histogram as count, p50, p99 and max.
func (h *Histogram) String() string {
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", h.n, h.Quantile(0.5), h.Quantile(0.99), h.max)
}

// histogramJSON is the wire form: only non-empty buckets.
type histogramJSON struct {
	Count   uint64      `json:"count"`
	SumNs   int64       `json:"sumNs"`
	MaxNs   int64       `json:"maxNs"`
	P50Ns   int64       `json:"p50Ns"`
	P99Ns   int64       `json:"p99Ns"`
	Buckets [][2]uint64 `json:"buckets"` // [bucket index, count]
}

// MarshalJSON encodes the non-empty buckets and, for readers, the p50 and
// p99.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	w := histogramJSON{Count: h.n, SumNs: int64(h.sum), MaxNs: int64(h.max), P50Ns: int64(h.Quantile(0.5)), P99Ns: int64(h.Quantile(0.99)), Buckets: [][2]uint64{}}
	for i, c := range h.counts {
		if c != 0 {
			w.Buckets = append(w.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var w histogramJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*h = Histogram{n: w.Count, sum: time.Duration(w.SumNs), max: time.Duration(w.MaxNs)}
	sort.Slice(w.Buckets, func(i, j int) bool { return w.Buckets[i][0] < w.Buckets[j][0] })
	for _, b := range w.Buckets {
		if b[0] >= numBuckets {
			return fmt.Errorf("fleet: histogram bucket %d out of range", b[0])
		}
		h.counts[b[0]] += b[1]
	}
	return nil
}
