package fleet

import (
	"fmt"
	"strconv"
	"time"

	"github.com/credhelper/credhelper/refresh"
)

// Timing scales the refresh engine down to lifetimes of seconds for
// multi-process tests. The parent writes it into the workers' parameters
// with Params; each worker reads it back with ParseTiming and applies it
// to its engine with Apply.
type Timing struct {
	Lifetime      time.Duration // of the pairs the test mints; not sent to workers
	Fraction      float64
	Floor         time.Duration
	MinValidity   time.Duration
	Lease         time.Duration
	IssuerTimeout time.Duration
	Skew          time.Duration
	Retry         time.Duration
	MaxRetry      time.Duration
}

// durations names the duration fields in worker parameters.
func (tm *Timing) durations() map[string]*time.Duration {
	return map[string]*time.Duration{
		"floor": &tm.Floor, "minValidity": &tm.MinValidity, "lease": &tm.Lease, "issuerTimeout": &tm.IssuerTimeout,
		"skew": &tm.Skew, "retry": &tm.Retry, "maxRetry": &tm.MaxRetry,
	}
}

// Params adds the engine settings to worker parameters p and returns p.
func (tm Timing) Params(p map[string]string) map[string]string {
	p["fraction"] = strconv.FormatFloat(tm.Fraction, 'g', -1, 64)
	for k, d := range tm.durations() {
		p[k] = d.String()
	}
	return p
}

// ParseTiming reads what Params wrote, looking each parameter up with get.
func ParseTiming(get func(name string) string) (Timing, error) {
	var tm Timing
	for k, dst := range tm.durations() {
		d, err := time.ParseDuration(get(k))
		if err != nil {
			return Timing{}, fmt.Errorf("param %s: %w", k, err)
		}
		*dst = d
	}
	frac, err := strconv.ParseFloat(get("fraction"), 64)
	if err != nil {
		return Timing{}, fmt.Errorf("param fraction: %w", err)
	}
	tm.Fraction = frac
	return tm, nil
}

// Apply sets the engine options the timing covers.
func (tm Timing) Apply(o *refresh.Options) {
	o.RefreshFraction, o.RefreshFloor, o.MinValidity = tm.Fraction, tm.Floor, tm.MinValidity
	o.LeaseDuration, o.IssuerTimeout, o.ClockSkew = tm.Lease, tm.IssuerTimeout, tm.Skew
	o.RetryBackoff, o.MaxRetryBackoff = tm.Retry, tm.MaxRetry
}

// StepTrace returns a refresh.Trace that calls fn with the name of each
// protocol step as it happens: "claimed", "issuing", "issued", "journaled"
// and "committed". Crash tests stop a process at one of them.
func StepTrace(fn func(step string)) *refresh.Trace {
	at := func(step string) func(string, uint64) { return func(string, uint64) { fn(step) } }
	return &refresh.Trace{Claimed: at("claimed"), Issuing: at("issuing"), Issued: at("issued"), Journaled: at("journaled"), Committed: at("committed")}
}
