package provider

import (
	"context"
	"errors"
)

// Kind names what sort of failure an error is, in words that cross process
// boundaries: the plugin protocol sends it upper-cased as its ErrorInfo
// reason, the agent protocol sends it as it is, and both turn it back into
// the error it stands for, so errors.Is works the same on either side.
type Kind string

// The kinds, one for each sentinel error of this package and for the two
// context errors. The string is the wire name; never change one.
const (
	KindLineageBroken    Kind = "lineage_broken"
	KindRefreshRejected  Kind = "refresh_rejected"
	KindExpired          Kind = "expired"
	KindNotFound         Kind = "not_found"
	KindPermission       Kind = "permission"
	KindInvalidRecord    Kind = "invalid_record"
	KindInvalidToken     Kind = "invalid_token"
	KindReadOnly         Kind = "read_only"
	KindConflict         Kind = "conflict"
	KindNoIssuer         Kind = "no_issuer"
	KindUnsupported      Kind = "unsupported"
	KindNotDelivered     Kind = "not_delivered"
	KindDeadlineExceeded Kind = "deadline_exceeded"
	KindCanceled         Kind = "canceled"
)

// kinds is the one table of error kinds: each kind and the error it stands
// for, the most telling first (an error that is both lineage_broken and
// refresh_rejected is reported as lineage_broken).
var kinds = [...]struct {
	kind Kind
	err  error
}{
	{KindLineageBroken, ErrLineageBroken},
	{KindRefreshRejected, ErrRefreshRejected},
	{KindExpired, ErrExpired},
	{KindNotFound, ErrNotFound},
	{KindPermission, ErrPermission},
	{KindInvalidRecord, ErrInvalidRecord},
	{KindInvalidToken, ErrInvalidToken},
	{KindReadOnly, ErrReadOnly},
	{KindConflict, ErrConflict},
	{KindNoIssuer, ErrNoIssuer},
	{KindUnsupported, ErrUnsupported},
	{KindNotDelivered, ErrNotDelivered},
	{KindDeadlineExceeded, context.DeadlineExceeded},
	{KindCanceled, context.Canceled},
}

// Kinds returns every kind, the most telling first.
func Kinds() []Kind {
	out := make([]Kind, len(kinds))
	for i, k := range kinds {
		out[i] = k.kind
	}
	return out
}

// Err returns the error k stands for (a sentinel of this package, or
// context.DeadlineExceeded or context.Canceled), or nil for a name that is
// not a kind.
func (k Kind) Err() error {
	for _, e := range kinds {
		if e.kind == k {
			return e.err
		}
	}
	return nil
}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool { return k.Err() != nil }

// KindsOf returns every kind err is (by errors.Is), the most telling first;
// nil for an error of no kind.
func KindsOf(err error) []Kind {
	if err == nil {
		return nil
	}
	var out []Kind
	for _, e := range kinds {
		if errors.Is(err, e.err) {
			out = append(out, e.kind)
		}
	}
	return out
}

// KindOf returns the most telling kind err is, or "" if it is of none.
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	for _, e := range kinds {
		if errors.Is(err, e.err) {
			return e.kind
		}
	}
	return ""
}

// Error is an error that states what happened in Msg and is of the given
// Kinds; Err, when set, is the underlying cause (an SDK's error, say), kept
// for errors.As but not repeated in the message. Backends, issuers and the
// process boundaries build their errors with it, so the sentinels an error
// unwraps to are always the ones its kinds name.
type Error struct {
	Msg   string
	Kinds []Kind
	Err   error
}

// NewError returns an *Error with message msg, cause err (may be nil) and
// the given kinds; kinds that are not valid are dropped.
func NewError(msg string, err error, kinds ...Kind) *Error {
	e := &Error{Msg: msg, Err: err}
	for _, k := range kinds {
		if k.Valid() {
			e.Kinds = append(e.Kinds, k)
		}
	}
	return e
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the error of each kind and then the cause, so errors.Is
// finds every kind and errors.As reaches into the cause.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, len(e.Kinds)+1)
	for _, k := range e.Kinds {
		if err := k.Err(); err != nil {
			errs = append(errs, err)
		}
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}
