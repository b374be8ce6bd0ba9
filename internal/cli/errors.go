package cli

import (
	"errors"
	"strings"

	"github.com/credhelper/credhelper/provider"
)

// Library errors state facts; the command adds what to do about them, by
// kind, last, once.
var hints = []struct {
	err  error
	hint string
}{
	{provider.ErrLineageBroken, "store a new pair with 'credhelper generate' or 'credhelper put'"},
	{provider.ErrExpired, "store a new pair with 'credhelper generate' or 'credhelper put'"},
	{provider.ErrNotFound, "store one with 'credhelper put' or 'credhelper generate'"},
}

// explain renders err as the one line the command prints: the message,
// with any hint a library still carries moved to the end, and the hint for
// its kind added once.
func (a *app) explain(err error) string {
	msg := oneLine(err.Error())
	var hint string
	for _, h := range hints {
		if errors.Is(err, h.err) {
			hint = h.hint
			break
		}
	}
	msg, carried := trimCarriedHints(msg)
	if hint == "" {
		hint = carried
	}
	if hint != "" {
		msg += ": " + hint
	}
	return msg
}

// carriedHints are the hints some library messages still carry (see the
// lead's list in the report); trimCarriedHints removes them from the middle
// of a message so the command's hint can come last, said once.
var carriedHints = []string{
	"store one with 'credhelper put' or 'credhelper generate'",
	"store a new one with 'credhelper generate' or 'credhelper put'",
	"store a new pair with 'credhelper generate' or 'credhelper put'",
	"pass --issuer or set issuer in the profile",
}

func trimCarriedHints(msg string) (string, string) {
	var found string
	for _, h := range carriedHints {
		if i := strings.Index(msg, ": "+h); i >= 0 {
			msg = msg[:i] + msg[i+len(": "+h):]
			if found == "" {
				found = h
			}
		}
	}
	return msg, found
}
