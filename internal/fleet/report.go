package fleet

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Report is what one worker process saw, or, after Merge, a whole fleet.
// It holds no token, only fingerprints.
type Report struct {
	// Process is the worker's index (-1 for a merged report); PID its
	// process id.
	Process int `json:"process"`
	PID     int `json:"pid"`
	// Goroutines is how many goroutines called Credential.
	Goroutines int `json:"goroutines"`
	// Start and End bound the calling loop.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`

	// Calls counts Credential calls; Served those that returned a pair.
	Calls  int64 `json:"calls"`
	Served int64 `json:"served"`
	// Invalid counts served pairs that broke I3: less than MinValidity
	// left when served, an auth token that does not decode, or an auth
	// token whose own expiry had passed. InvalidSamples says why (no
	// token content).
	Invalid        int64    `json:"invalid"`
	InvalidSamples []string `json:"invalidSamples,omitempty"`
	// Regressions counts calls that returned a generation lower than one
	// this process had already returned before the call began (I5 as one
	// process observes it).
	Regressions int64 `json:"regressions"`
	// Errors counts calls that failed; ErrorKinds groups them by message
	// (bounded), LineageBroken counts those wrapping
	// provider.ErrLineageBroken.
	Errors        int64            `json:"errors"`
	LineageBroken int64            `json:"lineageBroken"`
	ErrorKinds    map[string]int64 `json:"errorKinds,omitempty"`
	// FirstError and LastError are when calls first and last failed.
	FirstError time.Time `json:"firstError,omitzero"`
	LastError  time.Time `json:"lastError,omitzero"`

	// Waited is the latency of calls that returned a generation this
	// process had not returned before the call began: they waited for a
	// load, an adoption or a refresh. Cached is every other successful
	// call; Failed the calls that returned an error.
	Waited Histogram `json:"waited"`
	Cached Histogram `json:"cached"`
	Failed Histogram `json:"failed"`

	// Pairs lists each distinct pair served, by generation.
	Pairs []PairSeen `json:"pairs"`
	// Timeline lists, in time order, when a process first served each
	// generation.
	Timeline []GenEvent `json:"timeline"`
	// Events counts the engine's events (refresh.Event names).
	Events map[string]int64 `json:"events,omitempty"`
	// MaxGeneration is the highest generation served.
	MaxGeneration uint64 `json:"maxGeneration"`
	// CloseError is what closing the engine returned, if anything.
	CloseError string `json:"closeError,omitempty"`
	// Fatal is set when the worker could not run at all.
	Fatal string `json:"fatal,omitempty"`
}

// PairSeen is one distinct pair served.
type PairSeen struct {
	Generation  uint64    `json:"generation"`
	Fingerprint string    `json:"fingerprint"` // provider.Fingerprint of the auth token
	ValidUntil  time.Time `json:"validUntil"`
	FirstServed time.Time `json:"firstServed"`
	LastServed  time.Time `json:"lastServed"`
	Count       int64     `json:"count"`
	// MinLeft is the least validity the pair had left when served.
	MinLeft time.Duration `json:"minLeftNs"`
}

// GenEvent is the first time a process served a generation.
type GenEvent struct {
	At         time.Time `json:"at"`
	Generation uint64    `json:"generation"`
	Process    int       `json:"process"`
}

const maxErrorKinds = 20

// timestamps in error messages would make every retry a kind of its own.
var timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)

func (r *Report) addError(msg string, n int64) {
	msg = timestamp.ReplaceAllString(msg, "<time>")
	if r.ErrorKinds == nil {
		r.ErrorKinds = make(map[string]int64)
	}
	if _, ok := r.ErrorKinds[msg]; !ok && len(r.ErrorKinds) >= maxErrorKinds {
		msg = "(other errors)"
	}
	r.ErrorKinds[msg] += n
}

func (r *Report) addInvalid(msg string) {
	r.Invalid++
	if len(r.InvalidSamples) < 10 {
		r.InvalidSamples = append(r.InvalidSamples, msg)
	}
}

// addPair merges one served-pair record into r.Pairs.
func (r *Report) addPair(p PairSeen) {
	for i := range r.Pairs {
		q := &r.Pairs[i]
		if q.Generation != p.Generation || q.Fingerprint != p.Fingerprint {
			continue
		}
		if p.FirstServed.Before(q.FirstServed) {
			q.FirstServed = p.FirstServed
		}
		if p.LastServed.After(q.LastServed) {
			q.LastServed = p.LastServed
		}
		q.Count += p.Count
		q.MinLeft = min(q.MinLeft, p.MinLeft)
		return
	}
	r.Pairs = append(r.Pairs, p)
}

// Merge adds o's observations to r; r becomes a fleet report.
func (r *Report) Merge(o *Report) {
	r.Process, r.PID = -1, 0
	r.Goroutines += o.Goroutines
	if r.Start.IsZero() || (!o.Start.IsZero() && o.Start.Before(r.Start)) {
		r.Start = o.Start
	}
	if o.End.After(r.End) {
		r.End = o.End
	}
	r.Calls += o.Calls
	r.Served += o.Served
	r.Invalid += o.Invalid
	for _, s := range o.InvalidSamples {
		if len(r.InvalidSamples) < 10 {
			r.InvalidSamples = append(r.InvalidSamples, s)
		}
	}
	r.Regressions += o.Regressions
	r.Errors += o.Errors
	r.LineageBroken += o.LineageBroken
	for k, v := range o.ErrorKinds {
		r.addError(k, v)
	}
	if !o.FirstError.IsZero() && (r.FirstError.IsZero() || o.FirstError.Before(r.FirstError)) {
		r.FirstError = o.FirstError
	}
	if o.LastError.After(r.LastError) {
		r.LastError = o.LastError
	}
	r.Waited.Merge(&o.Waited)
	r.Cached.Merge(&o.Cached)
	r.Failed.Merge(&o.Failed)
	for _, p := range o.Pairs {
		r.addPair(p)
	}
	sort.Slice(r.Pairs, func(i, j int) bool {
		if r.Pairs[i].Generation != r.Pairs[j].Generation {
			return r.Pairs[i].Generation < r.Pairs[j].Generation
		}
		return r.Pairs[i].FirstServed.Before(r.Pairs[j].FirstServed)
	})
	r.Timeline = append(r.Timeline, o.Timeline...)
	sort.Slice(r.Timeline, func(i, j int) bool { return r.Timeline[i].At.Before(r.Timeline[j].At) })
	for k, v := range o.Events {
		if r.Events == nil {
			r.Events = make(map[string]int64)
		}
		r.Events[k] += v
	}
	r.MaxGeneration = max(r.MaxGeneration, o.MaxGeneration)
	if o.CloseError != "" && r.CloseError == "" {
		r.CloseError = fmt.Sprintf("process %d: %s", o.Process, o.CloseError)
	}
	if o.Fatal != "" && r.Fatal == "" {
		r.Fatal = fmt.Sprintf("process %d: %s", o.Process, o.Fatal)
	}
}

// Forks returns, for each generation served as more than one distinct
// pair anywhere in the report, a description; a correct fleet has none.
func (r *Report) Forks() []string {
	byGen := map[uint64][]string{}
	for _, p := range r.Pairs {
		byGen[p.Generation] = append(byGen[p.Generation], p.Fingerprint)
	}
	var out []string
	for g, fps := range byGen {
		if len(fps) > 1 {
			out = append(out, fmt.Sprintf("generation %d served as %d different pairs (%s)", g, len(fps), strings.Join(fps, ", ")))
		}
	}
	sort.Strings(out)
	return out
}

// FirstServed returns when generation g was first served anywhere in the
// report, and whether it was.
func (r *Report) FirstServed(g uint64) (time.Time, bool) {
	var t time.Time
	for _, p := range r.Pairs {
		if p.Generation == g && (t.IsZero() || p.FirstServed.Before(t)) {
			t = p.FirstServed
		}
	}
	return t, !t.IsZero()
}

// Generations returns the distinct generations served, ascending.
func (r *Report) Generations() []uint64 {
	seen := map[uint64]bool{}
	var out []uint64
	for _, p := range r.Pairs {
		if !seen[p.Generation] {
			seen[p.Generation] = true
			out = append(out, p.Generation)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Summary is a one-line description for test logs.
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d goroutines, %v: calls=%d served=%d invalid=%d regressions=%d errors=%d (lineage broken %d) maxGeneration=%d",
		r.Goroutines, r.End.Sub(r.Start).Round(time.Millisecond), r.Calls, r.Served, r.Invalid, r.Regressions, r.Errors, r.LineageBroken, r.MaxGeneration)
	fmt.Fprintf(&b, "; latency waited[%v] cached[%v] failed[%v]", &r.Waited, &r.Cached, &r.Failed)
	if len(r.Events) > 0 {
		b.WriteString("; engine events")
		for _, k := range slices.Sorted(maps.Keys(r.Events)) {
			fmt.Fprintf(&b, " %s=%d", k, r.Events[k])
		}
	}
	return b.String()
}
