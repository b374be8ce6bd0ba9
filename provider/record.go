package provider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxRecordSize is the largest encoded record the codec accepts (Secrets
// Manager's limit for a secret string is 65,536 bytes).
const MaxRecordSize = 64 << 10

// MaxGeneration is the largest generation a record may carry: 2^53, the
// largest integer every JSON reader (JavaScript's included) holds exactly,
// and far from overflowing when a refresh adds one.
const MaxGeneration = 1 << 53

// maxValidUntil is the last second of year 9999; anything above it is almost
// certainly milliseconds written where seconds belong.
const maxValidUntil = 253402300799

// Stored field names. The first three are the names Momento's own Secrets
// Manager rotation tooling uses, so its secrets work unchanged.
const (
	fieldAPIKey       = "apiKey"
	fieldRefreshToken = "refreshToken"
	fieldValidUntil   = "validUntil"
	fieldEndpoint     = "endpoint"
	// fieldRefreshValidUntil is the refresh token's expiry (epoch seconds,
	// 0 or absent: not known) and fieldIssuedAt when the pair was issued.
	fieldRefreshValidUntil = "refreshValidUntil"
	fieldIssuedAt          = "issuedAt"
	fieldGeneration        = "generation"
	fieldLease             = "lease"
	fieldBroken            = "lineageBroken"
	fieldHealed            = "healed"
)

// Lease marks a refresh in flight: Holder claimed the right to spend the
// refresh token of Generation until Expires.
type Lease struct {
	Holder     string
	Expires    time.Time
	Generation uint64
	// Kind is what the holder does under the lease: LeaseRefresh (the
	// zero value) spends the refresh token; LeaseHeal re-bootstraps a
	// broken lineage.
	Kind LeaseKind
}

// LeaseKind names what a lease's holder is doing.
type LeaseKind string

// Lease kinds.
const (
	LeaseRefresh LeaseKind = ""
	LeaseHeal    LeaseKind = "heal"
)

// Broken marks a lineage that cannot be continued: the issuer rejected the
// refresh token of Generation. Engines that load such a record fail at once
// instead of presenting the spent token again; storing a new pair (put,
// generate) clears it.
type Broken struct {
	Generation uint64
	// Reason is a short, non-secret explanation.
	Reason string
	// HealFailures counts failed attempts to re-bootstrap the lineage, and
	// HealRetryAfter is when the next may start, so that a whole fleet
	// backs off together.
	HealFailures   uint64
	HealRetryAfter time.Time
}

// Healed notes that a lineage was restarted from its bootstrap: the
// generation that was broken, why, and when.
type Healed struct {
	Generation uint64
	Reason     string
	At         time.Time
}

// Record is the stored form of a credential: a Pair, an optional Lease, and
// any fields credhelper does not know, which it preserves on every write.
type Record struct {
	Pair   Pair
	Lease  *Lease
	Broken *Broken
	Healed *Healed
	// extra holds unknown top-level fields verbatim.
	extra map[string]json.RawMessage
}

// Clone returns a deep copy of r.
func (r *Record) Clone() *Record {
	c := &Record{Pair: r.Pair}
	if r.Lease != nil {
		l := *r.Lease
		c.Lease = &l
	}
	if r.Broken != nil {
		b := *r.Broken
		c.Broken = &b
	}
	if r.Healed != nil {
		h := *r.Healed
		c.Healed = &h
	}
	if r.extra != nil {
		c.extra = make(map[string]json.RawMessage, len(r.extra))
		for k, v := range r.extra {
			c.extra[k] = v
		}
	}
	return c
}

// Extra returns the raw JSON of an unknown field, if present.
func (r *Record) Extra(name string) (json.RawMessage, bool) {
	v, ok := r.extra[name]
	return v, ok
}

// SetExtra sets an unknown field; used by tools that add their own fields.
func (r *Record) SetExtra(name string, raw json.RawMessage) {
	if r.extra == nil {
		r.extra = make(map[string]json.RawMessage)
	}
	r.extra[name] = raw
}

// recordError builds a one-line validation error that names the field and
// the fix, wrapping ErrInvalidRecord. It never includes field values that
// could be secrets.
func recordError(format string, args ...any) error {
	return fmt.Errorf("provider: invalid record: %s: %w", fmt.Sprintf(format, args...), ErrInvalidRecord)
}

// DecodeRecord parses and validates a stored record.
func DecodeRecord(data []byte) (*Record, error) {
	if len(data) > MaxRecordSize {
		return nil, recordError("%d bytes is larger than the %d-byte limit", len(data), MaxRecordSize)
	}
	if !utf8.Valid(data) {
		return nil, recordError("not UTF-8 text; expected a JSON object with %q, %q and %q", fieldAPIKey, fieldRefreshToken, fieldValidUntil)
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, recordError("not a JSON object (%s); expected {%q: ..., %q: ..., %q: ...}", jsonProblem(err), fieldAPIKey, fieldRefreshToken, fieldValidUntil)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, recordError("trailing data after the JSON object")
	}
	r := &Record{}
	var err error
	if r.Pair.AuthToken, err = stringField(fields, fieldAPIKey, true); err != nil {
		return nil, err
	}
	if r.Pair.RefreshToken, err = stringField(fields, fieldRefreshToken, false); err != nil {
		return nil, err
	}
	if r.Pair.Endpoint, err = stringField(fields, fieldEndpoint, false); err != nil {
		return nil, err
	}
	vu, ok, err := uintField(fields, fieldValidUntil)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, recordError("missing %q (epoch seconds, 0 for never)", fieldValidUntil)
	}
	if vu > maxValidUntil {
		return nil, recordError("%q %d is not epoch seconds (milliseconds?)", fieldValidUntil, vu)
	}
	if vu != 0 {
		r.Pair.ValidUntil = time.Unix(int64(vu), 0)
	}
	for name, dst := range map[string]*time.Time{fieldRefreshValidUntil: &r.Pair.RefreshValidUntil, fieldIssuedAt: &r.Pair.IssuedAt} {
		n, _, err := uintField(fields, name)
		if err != nil {
			return nil, err
		}
		if n > maxValidUntil {
			return nil, recordError("%q %d is not epoch seconds (milliseconds?)", name, n)
		}
		if n != 0 {
			*dst = time.Unix(int64(n), 0)
		}
	}
	if r.Pair.Generation, _, err = uintField(fields, fieldGeneration); err != nil {
		return nil, err
	}
	if r.Pair.Generation > MaxGeneration {
		return nil, recordError("%q %d is over the limit of %d: store the pair again without it", fieldGeneration, r.Pair.Generation, uint64(MaxGeneration))
	}
	if r.Pair.RefreshToken == "" && !r.Pair.Never() {
		return nil, recordError("missing or empty %q: an expiring pair needs one to be refreshed", fieldRefreshToken)
	}
	if raw, ok := fields[fieldLease]; ok && !isNull(raw) {
		l, err := decodeLease(raw)
		if err != nil {
			return nil, err
		}
		r.Lease = l
	}
	if raw, ok := fields[fieldBroken]; ok && !isNull(raw) {
		b, err := decodeBroken(raw)
		if err != nil {
			return nil, err
		}
		r.Broken = b
	}
	if raw, ok := fields[fieldHealed]; ok && !isNull(raw) {
		h, err := decodeHealed(raw)
		if err != nil {
			return nil, err
		}
		r.Healed = h
	}
	for _, k := range []string{fieldAPIKey, fieldRefreshToken, fieldValidUntil, fieldEndpoint, fieldGeneration, fieldLease, fieldBroken, fieldHealed, fieldRefreshValidUntil, fieldIssuedAt} {
		delete(fields, k)
	}
	if len(fields) > 0 {
		r.extra = fields
	}
	return r, nil
}

// Encode returns the record's JSON form, unknown fields included, with keys
// in a stable order.
func (r *Record) Encode() ([]byte, error) {
	if err := r.Pair.validate(); err != nil {
		return nil, err
	}
	if r.Pair.Generation > MaxGeneration {
		return nil, recordError("%q out of range", fieldGeneration)
	}
	if l := r.Lease; l != nil {
		if l.Holder == "" || !printable(l.Holder) || l.Expires.Unix() < 0 || l.Expires.Unix() > maxValidUntil || l.Generation > math.MaxInt64 {
			return nil, recordError("lease needs a holder name and an expiry in range")
		}
		if l.Kind != LeaseRefresh && l.Kind != LeaseHeal {
			return nil, recordError("lease kind %q is not %q", l.Kind, LeaseHeal)
		}
	}
	out := make(map[string]any, len(r.extra)+6)
	for k, v := range r.extra {
		out[k] = v
	}
	out[fieldAPIKey] = r.Pair.AuthToken
	out[fieldRefreshToken] = r.Pair.RefreshToken
	var vu int64
	if !r.Pair.Never() {
		vu = r.Pair.ValidUntil.Unix()
	}
	out[fieldValidUntil] = vu
	if r.Pair.Endpoint != "" {
		out[fieldEndpoint] = r.Pair.Endpoint
	}
	if !r.Pair.RefreshValidUntil.IsZero() {
		out[fieldRefreshValidUntil] = r.Pair.RefreshValidUntil.Unix()
	}
	if !r.Pair.IssuedAt.IsZero() {
		out[fieldIssuedAt] = r.Pair.IssuedAt.Unix()
	}
	out[fieldGeneration] = r.Pair.Generation
	if r.Lease != nil {
		l := map[string]any{
			"holder":     r.Lease.Holder,
			"expires":    ceilUnix(r.Lease.Expires),
			"generation": r.Lease.Generation,
		}
		if r.Lease.Kind != LeaseRefresh {
			l["kind"] = string(r.Lease.Kind)
		}
		out[fieldLease] = l
	}
	if b := r.Broken; b != nil {
		m := map[string]any{"generation": b.Generation, "reason": b.Reason}
		if b.HealFailures > 0 {
			m["healFailures"] = b.HealFailures
		}
		if !b.HealRetryAfter.IsZero() {
			m["healRetryAfter"] = ceilUnix(b.HealRetryAfter)
		}
		out[fieldBroken] = m
	}
	if h := r.Healed; h != nil {
		out[fieldHealed] = map[string]any{"generation": h.Generation, "reason": h.Reason, "at": h.At.Unix()}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("provider: encode record: %w", err)
	}
	if len(b) > MaxRecordSize {
		return nil, recordError("encoded record is %d bytes, over the %d-byte limit", len(b), MaxRecordSize)
	}
	return b, nil
}

// validate checks the invariants every stored pair keeps.
func (p Pair) validate() error {
	if p.AuthToken == "" {
		return recordError("empty %q", fieldAPIKey)
	}
	if p.RefreshToken == "" && !p.Never() {
		return recordError("empty %q on an expiring pair", fieldRefreshToken)
	}
	if !p.Never() && (p.ValidUntil.Unix() <= 0 || p.ValidUntil.Unix() > maxValidUntil) {
		return recordError("%q out of range", fieldValidUntil)
	}
	for name, t := range map[string]time.Time{fieldRefreshValidUntil: p.RefreshValidUntil, fieldIssuedAt: p.IssuedAt} {
		if !t.IsZero() && (t.Unix() <= 0 || t.Unix() > maxValidUntil) {
			return recordError("%q out of range", name)
		}
	}
	for name, s := range map[string]string{fieldAPIKey: p.AuthToken, fieldRefreshToken: p.RefreshToken, fieldEndpoint: p.Endpoint} {
		if !printable(s) {
			return recordError("%q contains whitespace or control characters", name)
		}
	}
	return nil
}

// Validate reports whether the pair can be stored.
func (p Pair) Validate() error { return p.validate() }

func decodeLease(raw json.RawMessage) (*Lease, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, recordError("%q is not a JSON object", fieldLease)
	}
	holder, err := stringField(fields, "holder", true)
	if err != nil {
		return nil, err
	}
	exp, ok, err := uintField(fields, "expires")
	if err != nil {
		return nil, err
	}
	if !ok || exp > maxValidUntil {
		return nil, recordError("lease needs \"expires\" in epoch seconds")
	}
	gen, _, err := uintField(fields, "generation")
	if err != nil {
		return nil, err
	}
	kind, err := stringField(fields, "kind", false)
	if err != nil {
		return nil, err
	}
	if LeaseKind(kind) != LeaseRefresh && LeaseKind(kind) != LeaseHeal {
		return nil, recordError("lease kind %q is not %q", kind, LeaseHeal)
	}
	return &Lease{Holder: holder, Expires: time.Unix(int64(exp), 0), Generation: gen, Kind: LeaseKind(kind)}, nil
}

// ceilUnix rounds up to whole seconds: a lease stored in seconds must never
// look shorter to others than it is to its holder.
func ceilUnix(t time.Time) int64 {
	if t.Nanosecond() > 0 {
		return t.Unix() + 1
	}
	return t.Unix()
}

func decodeBroken(raw json.RawMessage) (*Broken, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, recordError("%q is not a JSON object", fieldBroken)
	}
	gen, _, err := uintField(fields, "generation")
	if err != nil {
		return nil, err
	}
	var reason string
	if raw, ok := fields["reason"]; ok {
		_ = json.Unmarshal(raw, &reason)
	}
	b := &Broken{Generation: gen, Reason: reason}
	if b.HealFailures, _, err = uintField(fields, "healFailures"); err != nil {
		return nil, err
	}
	after, _, err := uintField(fields, "healRetryAfter")
	if err != nil {
		return nil, err
	}
	if after > maxValidUntil {
		return nil, recordError("%q: healRetryAfter out of range", fieldBroken)
	}
	if after > 0 {
		b.HealRetryAfter = time.Unix(int64(after), 0)
	}
	return b, nil
}

func decodeHealed(raw json.RawMessage) (*Healed, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, recordError("%q is not a JSON object", fieldHealed)
	}
	gen, _, err := uintField(fields, "generation")
	if err != nil {
		return nil, err
	}
	at, _, err := uintField(fields, "at")
	if err != nil {
		return nil, err
	}
	if at > maxValidUntil {
		return nil, recordError("%q: at out of range", fieldHealed)
	}
	var reason string
	if raw, ok := fields["reason"]; ok {
		_ = json.Unmarshal(raw, &reason)
	}
	return &Healed{Generation: gen, Reason: reason, At: time.Unix(int64(at), 0)}, nil
}

func stringField(fields map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		if required {
			return "", recordError("missing %q", name)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", recordError("%q must be a string, not %s", name, jsonKind(raw))
	}
	if required && s == "" {
		return "", recordError("empty %q", name)
	}
	if !printable(s) {
		return "", recordError("%q contains whitespace or control characters", name)
	}
	return s, nil
}

func uintField(fields map[string]json.RawMessage, name string) (uint64, bool, error) {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return 0, false, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, false, recordError("%q must be a number, not %s", name, jsonKind(raw))
	}
	if i, err := n.Int64(); err == nil {
		if i < 0 {
			return 0, false, recordError("%q must not be negative", name)
		}
		return uint64(i), true, nil
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f != math.Trunc(f) || f > maxValidUntil {
		return 0, false, recordError("%q must be a non-negative whole number", name)
	}
	return uint64(f), true, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func jsonKind(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// jsonProblem describes a JSON syntax error by position only, never by the
// offending bytes, which could be part of a secret.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return "null"
	case asErr(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case asErr(err, &te):
		return "found " + te.Value
	default:
		return "unexpected end of input"
	}
}

func printable(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}
