package server

import (
	"bufio"
	"io"
	"math"
	"net/http"
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

	mu         sync.Mutex // guards the maps below
	events     map[eventKey]uint64
	expiry     map[string]time.Time // profile -> expiry; zero Time: never
	generation map[string]uint64
	requests   map[requestKey]uint64
	refused    uint64
}

type eventKey struct {
	profile string
	event   refresh.Event
}

type requestKey struct{ op, result string }

// NewMetrics returns an empty collection.
func NewMetrics() *Metrics {
	return &Metrics{
		now:        time.Now,
		events:     make(map[eventKey]uint64),
		expiry:     make(map[string]time.Time),
		generation: make(map[string]uint64),
		requests:   make(map[requestKey]uint64),
	}
}

// Engine returns the refresh.Metrics to give profile's engine: it labels
// everything with the profile name instead of the backend key.
func (m *Metrics) Engine(profile string) refresh.Metrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range refresh.Events() {
		k := eventKey{profile, ev}
		m.events[k] += 0
	}
	return engineMetrics{m: m, profile: profile}
}

type engineMetrics struct {
	m       *Metrics
	profile string
}

func (e engineMetrics) Count(_ string, ev refresh.Event) {
	e.m.mu.Lock()
	e.m.events[eventKey{e.profile, ev}]++
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

// ContentType is the media type of WriteText's output.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteText writes every metric in the Prometheus text format.
func (m *Metrics) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	now := m.now()
	m.mu.Lock()
	events := make([]eventKey, 0, len(m.events))
	for k := range m.events {
		events = append(events, k)
	}
	sort.Slice(events, func(i, j int) bool {
		if events[i].profile != events[j].profile {
			return events[i].profile < events[j].profile
		}
		return events[i].event < events[j].event
	})
	header(bw, "credhelper_refresh_events_total", "counter", "Refresh protocol events per profile: refresh_started, committed (refreshes), adopted, conflict, failed, lineage_broken and others.")
	for _, k := range events {
		sample(bw, "credhelper_refresh_events_total", float64(m.events[k]), "profile", k.profile, "event", string(k.event))
	}
	header(bw, "credhelper_credential_seconds_to_expiry", "gauge", "Seconds until the profile's current pair expires; +Inf for a pair that never expires.")
	for _, p := range sortedKeys(m.expiry) {
		v := math.Inf(1)
		if at := m.expiry[p]; !at.IsZero() {
			v = at.Sub(now).Seconds()
		}
		sample(bw, "credhelper_credential_seconds_to_expiry", v, "profile", p)
	}
	header(bw, "credhelper_credential_generation", "gauge", "Generation of the pair the agent serves for the profile.")
	for _, p := range sortedKeys(m.generation) {
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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
