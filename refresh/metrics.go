package refresh

// Event names what happened to a credential; every event is logged and
// counted.
type Event string

// Events the engine emits.
const (
	EventRefreshStarted Event = "refresh_started"
	EventCommitted      Event = "committed"
	EventAdopted        Event = "adopted"
	EventConflict       Event = "conflict"
	EventClaimLost      Event = "claim_lost"
	EventOrphaned       Event = "orphaned"
	EventLineageBroken  Event = "lineage_broken"
	EventFailed         Event = "failed"
	EventLeaseWait      Event = "lease_wait"
	EventJournalReplay  Event = "journal_replayed"
	EventCommitDeferred Event = "commit_deferred"
	// EventLeaseRenewed: the holder extended its lease while its issuer
	// call or commit was in flight.
	EventLeaseRenewed Event = "lease_renewed"
	// EventLeaseLost: the holder could not renew its lease (taken over, or
	// the store unreachable until it ran out) and stopped presenting.
	EventLeaseLost Event = "lease_lost"
	// EventSpentElsewhere: taking over an expired lease, this instance
	// asked the issuer and learned that the refresh token was already
	// spent, so it waits for the previous holder's commit instead of
	// presenting it.
	EventSpentElsewhere Event = "spent_elsewhere"
	// EventHealed: a broken lineage was restarted from the bootstrap.
	EventHealed Event = "healed"
	// EventHealFailed: a bootstrap failed; the next attempt is backed off.
	EventHealFailed Event = "heal_failed"
)

// Events lists every Event the engine emits, so that a metrics adapter can
// export each counter from zero.
func Events() []Event {
	return []Event{EventRefreshStarted, EventCommitted, EventAdopted, EventConflict, EventClaimLost, EventOrphaned,
		EventLineageBroken, EventFailed, EventLeaseWait, EventJournalReplay, EventCommitDeferred,
		EventLeaseRenewed, EventLeaseLost, EventSpentElsewhere, EventHealed, EventHealFailed}
}

// Metrics receives the engine's counters and gauges. Implementations must
// be safe for concurrent use and fast; a Prometheus adapter implements it
// with a CounterVec and a GaugeVec.
type Metrics interface {
	// Count adds one to the counter for event on key.
	Count(key string, event Event)
	// SecondsToExpiry sets the gauge of how long key's current pair stays
	// valid; it is +Inf for a pair that never expires.
	SecondsToExpiry(key string, seconds float64)
}

type nopMetrics struct{}

func (nopMetrics) Count(string, Event)             {}
func (nopMetrics) SecondsToExpiry(string, float64) {}
