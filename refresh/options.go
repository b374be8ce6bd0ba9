package refresh

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/credhelper/credhelper/internal/fsutil"
	"github.com/credhelper/credhelper/provider"
)

// Options configure an Engine. Durations are validated by New.
type Options struct {
	// Holder names this instance in leases; default host-pid-random.
	Holder string
	// Clock tells time; default SystemClock.
	Clock Clock
	// Logger receives one structured line per event; nil is silent.
	Logger *slog.Logger
	// Metrics receives counters and the seconds-to-expiry gauge.
	Metrics Metrics

	// RefreshFraction and RefreshFloor size the refresh window: a pair is
	// refreshed once less than max(RefreshFloor, RefreshFraction x
	// lifetime) of it remains. Defaults 0.25 and 5 minutes.
	RefreshFraction float64
	RefreshFloor    time.Duration
	// Jitter is the fraction of the window's usable part (from the
	// window's start to the point where the pair would have less than
	// MinValidity left) over which instances spread their refreshes. Each
	// engine takes its own point, fixed at New: evenly spaced among the
	// engines of one process (an agent's profiles minted together fall due
	// evenly) and independent across processes. Default 0.75, leaving the
	// last quarter for retries (a one-hour pair with the default window
	// and MinValidity refreshes between 15 and about 4.5 minutes before it
	// expires).
	Jitter float64
	// MinValidity is the least validity a returned pair has left; default
	// 1 minute. It must be smaller than the window.
	MinValidity time.Duration

	// LeaseDuration is how long a claim lasts without renewal; default
	// 60s. The holder renews it every third of LeaseDuration while its
	// issuer call or commit is in flight.
	LeaseDuration time.Duration
	// IssuerTimeout is the hard ceiling of one issuer call. The call is
	// not cut off earlier while the lease can be renewed; it is cancelled
	// at once when the lease cannot be. Default 2 minutes.
	IssuerTimeout time.Duration
	// ClockSkew is how far other hosts' clocks may be off; a lease counts
	// as expired only ClockSkew after its expiry. Default 30s.
	ClockSkew time.Duration
	// RetryBackoff is the first delay after a failed refresh, doubling to
	// MaxRetryBackoff, with jitter. Defaults 1s and 1 minute.
	RetryBackoff, MaxRetryBackoff time.Duration

	// Bootstrap, when set, heals a lineage that can no longer be continued
	// (marked broken, or its refresh token expired): one instance claims
	// the heal, calls Bootstrap once, and commits the first pair of a new
	// chain as the next generation, which every other instance adopts. A
	// failing bootstrap is retried after a backoff every instance honours
	// (recorded in the record), never in a storm. Nil: a person must store
	// a new pair.
	Bootstrap provider.Bootstrapper
	// HealBackoff is the first delay after a failed bootstrap, doubling up
	// to an hour; default 30s.
	HealBackoff time.Duration

	// DeferRefresh makes Credential serve a pair that is due but usable
	// without starting a refresh in the background; Due then reports it.
	// A one-shot process sets it so that no caller waits for a refresh
	// while a usable pair exists, and hands the refresh to a process of
	// its own. A pair that is no longer usable is still refreshed, and
	// waited for, as usual.
	DeferRefresh bool

	// UnsafeRefreshInMemory lets an engine on a read-only backend (env, a
	// read-only plugin) refresh and keep the new pair in memory only. The
	// stored refresh token is then spent, and any other process reading
	// the same source presents it again, which an issuer with reuse
	// detection answers by revoking the whole family. Only a single
	// long-lived holder of the credential (an agent, or one process that
	// runs a command) should set it. By default such an engine serves the
	// stored pair while it is usable and refuses to refresh it.
	UnsafeRefreshInMemory bool

	// JournalDir holds the journal of issued but uncommitted pairs; default
	// $XDG_STATE_HOME/credhelper/journal (or ~/.local/state/...).
	JournalDir string

	// Trace, when set, is told of each protocol step as it happens.
	Trace *Trace
}

// Trace holds optional callbacks the engine calls at the steps of the
// refresh protocol (DESIGN section 5), in the style of net/http/httptrace:
// metrics, logs and tests observe the protocol without the engine knowing
// them. Each runs synchronously on the refreshing goroutine, so it must be
// quick and must not call the engine. generation is the generation whose
// refresh token is being spent (or, for Committed, the one committed).
type Trace struct {
	// Claimed: this instance won the claim (step 4).
	Claimed func(key string, generation uint64)
	// Issuing: the issuer (or a heal's bootstrap) is about to be called
	// (step 5).
	Issuing func(key string, generation uint64)
	// Issued: the issuer answered with the next pair, not yet journaled.
	Issued func(key string, generation uint64)
	// Journaled: the next pair is in the journal (step 6).
	Journaled func(key string, generation uint64)
	// Committed: the next pair is stored (step 7).
	Committed func(key string, generation uint64)
}

// The engine calls these; each is a no-op on a nil Trace or callback.
func (t *Trace) claimed(k string, g uint64) {
	t.call(func(t *Trace) func(string, uint64) { return t.Claimed }, k, g)
}
func (t *Trace) issuing(k string, g uint64) {
	t.call(func(t *Trace) func(string, uint64) { return t.Issuing }, k, g)
}
func (t *Trace) issued(k string, g uint64) {
	t.call(func(t *Trace) func(string, uint64) { return t.Issued }, k, g)
}
func (t *Trace) journaled(k string, g uint64) {
	t.call(func(t *Trace) func(string, uint64) { return t.Journaled }, k, g)
}
func (t *Trace) committed(k string, g uint64) {
	t.call(func(t *Trace) func(string, uint64) { return t.Committed }, k, g)
}

func (t *Trace) call(field func(*Trace) func(string, uint64), key string, gen uint64) {
	if t == nil {
		return
	}
	if fn := field(t); fn != nil {
		fn(key, gen)
	}
}

func defaultOptions() Options {
	return Options{
		Clock:           SystemClock{},
		Metrics:         nopMetrics{},
		RefreshFraction: 0.25,
		RefreshFloor:    5 * time.Minute,
		Jitter:          0.75,
		MinValidity:     time.Minute,
		LeaseDuration:   60 * time.Second,
		ClockSkew:       30 * time.Second,
		RetryBackoff:    time.Second,
		MaxRetryBackoff: time.Minute,
	}
}

func (o *Options) finish() error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = nopMetrics{}
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Holder == "" {
		o.Holder = defaultHolder()
	}
	if o.IssuerTimeout == 0 {
		o.IssuerTimeout = 2 * time.Minute
	}
	if o.HealBackoff == 0 {
		o.HealBackoff = 30 * time.Second
	}
	if o.JournalDir == "" {
		d, err := DefaultJournalDir()
		if err != nil {
			return err
		}
		o.JournalDir = d
	}
	switch {
	case !(o.RefreshFraction >= 0 && o.RefreshFraction < 1): // NaN too
		return fmt.Errorf("refresh: RefreshFraction %v must be in [0, 1)", o.RefreshFraction)
	case !(o.Jitter >= 0 && o.Jitter <= 1):
		return fmt.Errorf("refresh: Jitter %v must be in [0, 1]", o.Jitter)
	case o.RefreshFloor <= 0 || o.MinValidity < 0:
		return errors.New("refresh: RefreshFloor must be positive and MinValidity not negative")
	case o.MinValidity+CoarseSlack >= o.RefreshFloor:
		return fmt.Errorf("refresh: MinValidity (%v) plus %v must be less than RefreshFloor (%v), or pairs would expire before they are refreshed", o.MinValidity, CoarseSlack, o.RefreshFloor)
	case o.LeaseDuration < 30*time.Millisecond || o.IssuerTimeout <= 0 || o.HealBackoff < 0:
		return fmt.Errorf("refresh: LeaseDuration (%v) must be at least 30ms, IssuerTimeout (%v) positive and HealBackoff (%v) not negative", o.LeaseDuration, o.IssuerTimeout, o.HealBackoff)
	case o.ClockSkew < 0:
		return errors.New("refresh: ClockSkew must not be negative")
	case o.RetryBackoff <= 0 || o.MaxRetryBackoff < o.RetryBackoff:
		return errors.New("refresh: RetryBackoff must be positive and at most MaxRetryBackoff")
	}
	return nil
}

// DefaultJournalDir returns where journals live by default:
// $XDG_STATE_HOME/credhelper/journal, else ~/.local/state/credhelper/journal.
// A relative $XDG_STATE_HOME is ignored, as the XDG spec says.
func DefaultJournalDir() (string, error) {
	d := fsutil.StateHome()
	if d == "" {
		return "", errors.New("refresh: no journal directory: set JournalDir or $XDG_STATE_HOME")
	}
	return filepath.Join(d, "credhelper", "journal"), nil
}

func defaultHolder() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
