package faults

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// Row is one cell of the fault matrix: a fault injected into a fleet
// sharing one credential on one backend, and what came of it.
type Row struct {
	// Order sorts the rows (scenario number); Scenario and Backend name
	// the cell.
	Order    int
	Scenario string
	Backend  string
	// Result says in a few words what the fleet did.
	Result string
	// Invariants is "yes" when I1-I5 held, else "NO: " and which broke
	// and why.
	Invariants string
	// Intact reports whether the lineage survived (the stored pair can
	// still be refreshed).
	Intact bool
	// Spent counts refresh tokens the issuer accepted (new pairs minted);
	// Presented counts refresh requests that reached its refresh logic;
	// Rejected those it refused.
	Spent, Presented, Rejected uint64
	// Recover is how long after the fault ended a new generation was
	// stored (0: the fault never stopped the chain); Unrecovered says the
	// fleet cannot recover on its own (a person re-bootstraps). Healed
	// says the lineage was lost and the fleet healed it from its
	// bootstrap; Recover is then how long after the lineage broke the
	// healed generation was stored.
	Recover     time.Duration
	Unrecovered bool
	Healed      bool
}

// Table collects rows from concurrent cells.
type Table struct {
	mu   sync.Mutex
	rows []Row
}

// Add records a row.
func (t *Table) Add(r Row) {
	t.mu.Lock()
	t.rows = append(t.rows, r)
	t.mu.Unlock()
}

// Rows returns the rows sorted by scenario, then backend.
func (t *Table) Rows() []Row {
	t.mu.Lock()
	defer t.mu.Unlock()
	rows := append([]Row(nil), t.rows...)
	order := map[string]int{"file": 0, "awssm": 1, "vault": 2}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Order != rows[j].Order {
			return rows[i].Order < rows[j].Order
		}
		return order[rows[i].Backend] < order[rows[j].Backend]
	})
	return rows
}

// Markdown writes the table.
func (t *Table) Markdown(w io.Writer) {
	fmt.Fprintln(w, "| # | scenario | backend | result | I1-I5 held | lineage intact | refresh tokens spent / presented / rejected | time to recover |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, r := range t.Rows() {
		intact := "yes"
		if !r.Intact {
			intact = "**no**"
		}
		rec := "no outage"
		switch {
		case r.Unrecovered:
			rec = "manual (re-bootstrap)"
		case r.Healed:
			rec = fmt.Sprintf("healed in %.1fs", r.Recover.Seconds())
		case r.Recover > 0:
			rec = fmt.Sprintf("%.1fs", r.Recover.Seconds())
		}
		inv := r.Invariants
		if strings.HasPrefix(inv, "NO") {
			inv = "**" + inv + "**"
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %d / %d / %d | %s |\n",
			r.Order, r.Scenario, r.Backend, oneLine(r.Result), oneLine(inv), intact, r.Spent, r.Presented, r.Rejected, rec)
	}
}

func oneLine(s string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", "\\|")
}
