package fleet

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/credhelper/credhelper/provider"
)

// v1Key builds an unsigned-looking v1 key whose JWT expires at exp.
func v1Key(t *testing.T, exp time.Time) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": exp.Unix(), "c": "cache.cell.example"}).SignedString([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]string{"api_key": tok, "endpoint": "cell.example"})
	return base64.StdEncoding.EncodeToString(raw)
}

// TestCheck exercises the I3 checks a worker applies to every served pair.
func TestCheck(t *testing.T) {
	now := time.Now()
	st := &procState{cfg: &workerConfig{MinValidity: time.Second}}
	good := provider.Pair{AuthToken: v1Key(t, now.Add(time.Hour)), RefreshToken: "r", ValidUntil: now.Add(time.Hour).Truncate(time.Second), Generation: 3}
	for _, c := range []struct {
		name string
		pair provider.Pair
		want string
	}{
		{"valid", good, ""},
		{"under MinValidity", provider.Pair{AuthToken: good.AuthToken, RefreshToken: "r", ValidUntil: now.Add(500 * time.Millisecond), Generation: 3}, "under MinValidity"},
		{"garbage token", provider.Pair{AuthToken: "eyJub3QiOiJhIGtleSJ9.x.y", RefreshToken: "r", ValidUntil: now.Add(time.Hour), Generation: 3}, "does not decode"},
		{"token expired", provider.Pair{AuthToken: v1Key(t, now.Add(-time.Second)), RefreshToken: "r", ValidUntil: now.Add(time.Hour), Generation: 3}, "own expiry"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &Report{}
			g := &goroutineState{pairs: map[uint64]*PairSeen{}}
			st.check(r, g, c.pair, now)
			st.check(r, g, c.pair, now.Add(time.Millisecond))
			if c.want == "" {
				if r.Invalid != 0 {
					t.Fatalf("valid pair reported invalid: %v", r.InvalidSamples)
				}
			} else if r.Invalid == 0 || !strings.Contains(strings.Join(r.InvalidSamples, "|"), c.want) {
				t.Fatalf("invalid = %d %v, want samples mentioning %q", r.Invalid, r.InvalidSamples, c.want)
			}
			if ps := g.pairs[3]; ps == nil || ps.Count != 2 || ps.Fingerprint != provider.Fingerprint(c.pair.AuthToken) {
				t.Fatalf("pair record %+v, want 2 servings of one fingerprint", ps)
			}
			for _, s := range r.InvalidSamples {
				if strings.Contains(s, c.pair.AuthToken) {
					t.Fatal("a sample contains the token")
				}
			}
		})
	}
}

func TestMergeAndForks(t *testing.T) {
	t0 := time.Now()
	a := &Report{Process: 0, Goroutines: 2, Start: t0, End: t0.Add(time.Second), Calls: 10, Served: 9, Errors: 1,
		Pairs:    []PairSeen{{Generation: 0, Fingerprint: "aaaa", FirstServed: t0, LastServed: t0.Add(time.Second), Count: 9}},
		Timeline: []GenEvent{{At: t0, Generation: 0}}, Events: map[string]int64{"committed": 1}}
	a.addError("refresh: failed, retrying after 2030-01-01T00:00:00Z: boom", 1)
	b := &Report{Process: 1, Goroutines: 2, Start: t0.Add(-time.Second), End: t0.Add(2 * time.Second), Calls: 5, Served: 5,
		Pairs: []PairSeen{
			{Generation: 0, Fingerprint: "aaaa", FirstServed: t0.Add(-time.Second), LastServed: t0, Count: 4},
			{Generation: 1, Fingerprint: "bbbb", FirstServed: t0.Add(time.Second), LastServed: t0.Add(time.Second), Count: 1},
		},
		Timeline: []GenEvent{{At: t0.Add(time.Second), Generation: 1, Process: 1}}, Events: map[string]int64{"committed": 2}}
	b.addError("refresh: failed, retrying after 2030-01-01T00:00:01Z: boom", 2)
	var total Report
	total.Merge(a)
	total.Merge(b)
	if total.Calls != 15 || total.Served != 14 || total.Goroutines != 4 || total.Events["committed"] != 3 {
		t.Errorf("merged counts: %+v", total)
	}
	if !total.Start.Equal(t0.Add(-time.Second)) || !total.End.Equal(t0.Add(2*time.Second)) {
		t.Errorf("merged span %v..%v", total.Start, total.End)
	}
	if len(total.ErrorKinds) != 1 || total.ErrorKinds["refresh: failed, retrying after <time>: boom"] != 3 {
		t.Errorf("error kinds %v, want one kind without timestamps", total.ErrorKinds)
	}
	if g := total.Generations(); fmt.Sprint(g) != "[0 1]" {
		t.Errorf("generations %v", g)
	}
	if first, _ := total.FirstServed(0); !first.Equal(t0.Add(-time.Second)) {
		t.Errorf("FirstServed(0) = %v", first)
	}
	if f := total.Forks(); len(f) != 0 {
		t.Errorf("forks %v, want none", f)
	}
	total.Merge(&Report{Pairs: []PairSeen{{Generation: 1, Fingerprint: "cccc", Count: 1}}})
	if f := total.Forks(); len(f) != 1 || !strings.Contains(f[0], "generation 1") {
		t.Errorf("forks %v, want generation 1", f)
	}
	for i := range 30 {
		total.addError(fmt.Sprintf("kind %d", i), 1)
	}
	if len(total.ErrorKinds) > maxErrorKinds+1 {
		t.Errorf("%d error kinds kept, want at most %d", len(total.ErrorKinds), maxErrorKinds+1)
	}
}
