package rejected

import (
	"time"

	"github.com/credhelper/credhelper/provider"
)

// Settle is how long after it was issued a pair is not refreshed because
// a server rejected it: a pair that new was most likely issued for this
// very rejection, and another refresh would only rotate the lineage.
const Settle = time.Minute

// ShouldRefresh reports whether a server's rejection of p, the pair
// currently held, warrants a forced refresh at now: p is older than Settle,
// or its issue time is not known (neither recorded nor in the token). A
// pair that never expires is never refreshed.
func ShouldRefresh(p provider.Pair, now time.Time) bool {
	if p.Never() {
		return false
	}
	life, ok := p.Lifetime()
	if !ok {
		return true
	}
	return now.Sub(p.ValidUntil.Add(-life)) >= Settle
}
