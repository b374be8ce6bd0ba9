package fleet

import (
	"encoding/json"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	var all []time.Duration
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		d := time.Duration(r.ExpFloat64() * float64(50*time.Microsecond))
		h.Record(d)
		all = append(all, d)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))]
		got := h.Quantile(q)
		if got < exact || float64(got) > float64(exact)*1.07+16 {
			t.Errorf("Quantile(%v) = %v, want within [%v, +6.25%%]", q, got, exact)
		}
	}
	if h.Max() != all[len(all)-1] || h.Count() != uint64(len(all)) {
		t.Errorf("Max %v Count %d, want %v %d", h.Max(), h.Count(), all[len(all)-1], len(all))
	}
	if h.Quantile(1) != h.Max() {
		t.Errorf("Quantile(1) = %v, want Max %v", h.Quantile(1), h.Max())
	}
}

func TestHistogramBuckets(t *testing.T) {
	for _, ns := range []int64{0, 1, 15, 16, 17, 31, 32, 33, 1000, 1 << 40, 1<<62 + 12345, 1<<63 - 1} {
		i := bucketOf(ns)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", ns, i)
		}
		if up := bucketUpper(i); int64(up) < ns {
			t.Errorf("bucketUpper(bucketOf(%d)) = %d, below the value", ns, up)
		}
		if i > 0 && int64(bucketUpper(i-1)) >= ns {
			t.Errorf("value %d also fits bucket %d", ns, i-1)
		}
	}
}

func TestHistogramMergeAndJSON(t *testing.T) {
	var a, b Histogram
	for i := range 1000 {
		a.Record(time.Duration(i) * time.Microsecond)
		b.Record(time.Duration(i) * time.Millisecond)
	}
	a.Merge(&b)
	if a.Count() != 2000 || a.Max() != 999*time.Millisecond {
		t.Fatalf("merged: count %d max %v", a.Count(), a.Max())
	}
	raw, err := json.Marshal(&a)
	if err != nil {
		t.Fatal(err)
	}
	var back Histogram
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back != a {
		t.Errorf("JSON round trip changed the histogram: %v vs %v", &back, &a)
	}
	if err := json.Unmarshal([]byte(`{"buckets":[[5000,1]]}`), &back); err == nil {
		t.Error("bucket index out of range accepted")
	}
}
