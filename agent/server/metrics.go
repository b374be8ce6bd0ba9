package server

import (
	"bufio"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/credhelper/credhelper/refresh"
)

// Metrics collects the engines' counters and gauges and the agent's own,
// and writes them in the Prometheus text exposition format (version 0.0.4).
// It is written by hand rather than with client_golang: a handful of
// families with fixed labels do not justify its dependency tree in a binary
// whose start-up time matters. The zero value is not usable; use
// NewMetrics. It is safe for concurrent use.
type Metrics struct {
	now func() time.Time

	mu         sync.Mutex           // guards the maps below
	events     map[string]*[]uint64 // profile -> count per refresh.Events() index
	extra      map[eventKey]uint64  // events refresh.Events() does not list
	expiry     map[string]time.Time // profile -> expiry; zero Time: never
	generation map[string]uint64
	requests   map[requestKey]uint64
	refused    uint64
	sinks      map[sinkKey]uint64
}

type sinkKey struct{ profile, what string }

// What sink counters count.
const (
	sinkWrites         = "writes"
	sinkWriteFailures  = "write_failures"
	sinkCommandFailure = "command_failures"
	sinkExpired        = "expired"
)

type eventKey struct {
	profile string
	event   refresh.Event
}

type requestKey struct{ op, result string }

// NewMetrics returns an empty collection.
func NewMetrics() *Metrics {
	return &Metrics{
		now:        time.Now,
		events:     make(map[string]*[]uint64),
		extra:      make(map[eventKey]uint64),
		expiry:     make(map[string]time.Time),
		generation: make(map[string]uint64),
		requests:   make(map[requestKey]uint64),
		sinks:      make(map[sinkKey]uint64),
	}
}

// Engine returns the refresh.Metrics to give profile's engine: it labels
// everything with the profile name instead of the backend key.
func (m *Metrics) Engine(profile string) refresh.Metrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.events[profile] == nil {
		counts := make([]uint64, len(allEvents))
		m.events[profile] = &counts
	}
	return engineMetrics{m: m, profile: profile}
}

// allEvents and eventIndex number the engine's events, so that a profile's
// counters are one small slice rather than a map entry each.
var (
	allEvents  = refresh.Events()
	eventIndex = func() map[refresh.Event]int {
		idx := make(map[refresh.Event]int, len(allEvents))
		for i, ev := range allEvents {
			idx[ev] = i
		}
		return idx
	}()
)

type engineMetrics struct {
	m       *Metrics
	profile string
}

func (e engineMetrics) Count(_ string, ev refresh.Event) {
	e.m.mu.Lock()
	counts, i, ok := e.m.events[e.profile], 0, false
	if counts != nil {
		i, ok = eventIndex[ev]
	}
	if ok {
		(*counts)[i]++
	} else {
		e.m.extra[eventKey{e.profile, ev}]++
	}
	e.m.mu.Unlock()
}

// SecondsToExpiry records the expiry instant, so that the gauge keeps
// falling between publications instead of freezing at the last value.
func (e engineMetrics) SecondsToExpiry(_ string, secs float64) {
	var at time.Time
	if !math.IsInf(secs, 1) {
		at = e.m.now().Add(time.Duration(secs * float64(time.Second)))
	}
	e.m.mu.Lock()
	e.m.expiry[e.profile] = at
	e.m.mu.Unlock()
}

// sinkCount adds one to a profile's sink counter.
func (m *Metrics) sinkCount(profile, what string) {
	m.mu.Lock()
	m.sinks[sinkKey{profile, what}]++
	m.mu.Unlock()
}

func (m *Metrics) sinkCommandFailed(profile string) { m.sinkCount(profile, sinkCommandFailure) }

// sinkProfile makes a profile's sink counters exist from zero.
func (m *Metrics) sinkProfile(profile string) {
	m.mu.Lock()
	for _, w := range []string{sinkWrites, sinkWriteFailures, sinkCommandFailure, sinkExpired} {
		m.sinks[sinkKey{profile, w}] += 0
	}
	m.mu.Unlock()
}

// Forget drops every series of a profile the agent no longer serves.
func (m *Metrics) Forget(profile string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.events, profile)
	for k := range m.extra {
		if k.profile == profile {
			delete(m.extra, k)
		}
	}
	for k := range m.sinks {
		if k.profile == profile {
			delete(m.sinks, k)
		}
	}
	delete(m.expiry, profile)
	delete(m.generation, profile)
}

func (m *Metrics) setGeneration(profile string, gen uint64) {
	m.mu.Lock()
	m.generation[profile] = gen
	m.mu.Unlock()
}

func (m *Metrics) request(op, result string) {
	m.mu.Lock()
	m.requests[requestKey{op, result}]++
	m.mu.Unlock()
}

func (m *Metrics) refusedPeer() {
	m.mu.Lock()
	m.refused++
	m.mu.Unlock()
}

var sinkHelp = map[string]string{
	sinkWrites:         "Sink files written with a new pair, per profile.",
	sinkWriteFailures:  "Sink file writes that failed (retried with backoff), per profile.",
	sinkCommandFailure: "Sink commands that failed or timed out (run again on the next rotation), per profile.",
	sinkExpired:        "Sink files emptied or removed because their pair fell below min_validity without a newer one, per profile.",
}

// ContentType is the media type of WriteText's output.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteText writes every metric in the Prometheus text format.
func (m *Metrics) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	now := m.now()
	m.mu.Lock()
	events := make(map[eventKey]uint64, len(m.events)*len(allEvents)+len(m.extra))
	for p, counts := range m.events {
		for i, n := range *counts {
			events[eventKey{p, allEvents[i]}] = n
		}
	}
	for k, n := range m.extra {
		events[k] += n
	}
	keys := make([]eventKey, 0, len(events))
	for k := range events {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].profile != keys[j].profile {
			return keys[i].profile < keys[j].profile
		}
		return keys[i].event < keys[j].event
	})
	header(bw, "credhelper_refresh_events_total", "counter", "Refresh protocol events per profile: refresh_started, committed (refreshes), adopted, conflict, failed, lineage_broken and others.")
	for _, k := range keys {
		sample(bw, "credhelper_refresh_events_total", float64(events[k]), "profile", k.profile, "event", string(k.event))
	}
	header(bw, "credhelper_credential_seconds_to_expiry", "gauge", "Seconds until the profile's current pair expires; +Inf for a pair that never expires.")
	for _, p := range slices.Sorted(maps.Keys(m.expiry)) {
		v := math.Inf(1)
		if at := m.expiry[p]; !at.IsZero() {
			v = at.Sub(now).Seconds()
		}
		sample(bw, "credhelper_credential_seconds_to_expiry", v, "profile", p)
	}
	header(bw, "credhelper_credential_generation", "gauge", "Generation of the pair the agent serves for the profile.")
	for _, p := range slices.Sorted(maps.Keys(m.generation)) {
		sample(bw, "credhelper_credential_generation", float64(m.generation[p]), "profile", p)
	}
	reqs := make([]requestKey, 0, len(m.requests))
	for k := range m.requests {
		reqs = append(reqs, k)
	}
	sort.Slice(reqs, func(i, j int) bool {
		if reqs[i].op != reqs[j].op {
			return reqs[i].op < reqs[j].op
		}
		return reqs[i].result < reqs[j].result
	})
	header(bw, "credhelper_agent_requests_total", "counter", "Requests the agent answered, by operation and result (ok or an error kind).")
	for _, k := range reqs {
		sample(bw, "credhelper_agent_requests_total", float64(m.requests[k]), "op", k.op, "result", k.result)
	}
	sinks := make([]sinkKey, 0, len(m.sinks))
	for k := range m.sinks {
		sinks = append(sinks, k)
	}
	sort.Slice(sinks, func(i, j int) bool {
		if sinks[i].what != sinks[j].what {
			return sinks[i].what < sinks[j].what
		}
		return sinks[i].profile < sinks[j].profile
	})
	for i, k := range sinks {
		name := "credhelper_sink_" + k.what + "_total"
		if i == 0 || sinks[i-1].what != k.what {
			header(bw, name, "counter", sinkHelp[k.what])
		}
		sample(bw, name, float64(m.sinks[k]), "profile", k.profile)
	}
	header(bw, "credhelper_agent_refused_peers_total", "counter", "Connections refused because the peer is another user.")
	sample(bw, "credhelper_agent_refused_peers_total", float64(m.refused))
	m.mu.Unlock()
	return bw.Flush()
}

// ServeHTTP serves WriteText's output.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	_ = m.WriteText(w)
}

func header(w *bufio.Writer, name, typ, help string) {
	w.WriteString("# HELP " + name + " " + escapeHelp(help) + "\n")
	w.WriteString("# TYPE " + name + " " + typ + "\n")
}

// sample writes one line; labels are name, value pairs.
func sample(w *bufio.Writer, name string, v float64, labels ...string) {
	w.WriteString(name)
	if len(labels) > 0 {
		w.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(labels[i] + `="` + escapeLabel(labels[i+1]) + `"`)
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
