package server_test

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/agent/server"
	"github.com/credhelper/credhelper/refresh"
)

func TestMetricsText(t *testing.T) {
	m := server.NewMetrics()
	a := m.Engine("prod")
	odd := m.Engine("we\"ird\\name\nx") // label escaping
	a.Count("/ignored/key", refresh.EventCommitted)
	a.Count("/ignored/key", refresh.EventCommitted)
	a.Count("/ignored/key", refresh.EventConflict)
	a.Count("/ignored/key", refresh.Event("future_event"))
	a.SecondsToExpiry("/ignored/key", 100)
	odd.SecondsToExpiry("k", math.Inf(1))

	var sb strings.Builder
	if err := m.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	samples := parseProm(t, sb.String())
	for _, c := range []struct {
		event string
		want  float64
	}{{"committed", 2}, {"conflict", 1}, {"adopted", 0}, {"failed", 0}, {"lineage_broken", 0}, {"future_event", 1}} {
		if v, ok := promValue(samples, "credhelper_refresh_events_total", "profile", "prod", "event", c.event); !ok || v != c.want {
			t.Errorf("events{prod,%s} = %v (present %v), want %v", c.event, v, ok, c.want)
		}
	}
	if _, ok := promValue(samples, "credhelper_refresh_events_total", "profile", "we\"ird\\name\nx", "event", "committed"); !ok {
		t.Error("the escaped profile's series did not round-trip")
	}
	v, ok := promValue(samples, "credhelper_credential_seconds_to_expiry", "profile", "prod")
	if !ok || v > 100 || v < 99 {
		t.Errorf("seconds_to_expiry{prod} = %v, want just under 100", v)
	}
	if v, _ := promValue(samples, "credhelper_credential_seconds_to_expiry", "profile", "we\"ird\\name\nx"); !math.IsInf(v, 1) {
		t.Errorf("never-expiring seconds_to_expiry = %v, want +Inf", v)
	}

	// The gauge keeps falling between publications.
	time.Sleep(20 * time.Millisecond)
	sb.Reset()
	_ = m.WriteText(&sb)
	if v2, _ := promValue(parseProm(t, sb.String()), "credhelper_credential_seconds_to_expiry", "profile", "prod"); v2 >= v {
		t.Errorf("seconds_to_expiry did not fall: %v then %v", v, v2)
	}
}

func TestMetricsHTTP(t *testing.T) {
	m := server.NewMetrics()
	m.Engine("p").Count("k", refresh.EventAdopted)
	srv := httptest.NewServer(m)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != server.ContentType {
		t.Errorf("GET: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if v, _ := promValue(parseProm(t, string(body)), "credhelper_refresh_events_total", "profile", "p", "event", "adopted"); v != 1 {
		t.Errorf("adopted = %v, want 1", v)
	}
	resp, err = http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
}
