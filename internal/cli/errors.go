package cli

import (
	"errors"
	"regexp"
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
	// A sentinel's own text at the end repeats what the message says.
	for _, k := range provider.KindsOf(err) {
		if t := ": " + k.Err().Error(); strings.HasSuffix(msg, t) && len(msg) > len(t) {
			msg = strings.TrimSuffix(msg, t)
		}
	}
	if hint != "" {
		msg += ": " + hint
	}
	return msg
}

// carried are the hints (and one restating clause) that messages of the
// refresh engine still carry; trimCarriedHints removes them from the middle
// of a message so that the command's hint comes last and nothing is said
// twice. Once refresh states facts only, this list empties.
var carried = []struct {
	re   *regexp.Regexp
	hint string
}{
	{regexp.MustCompile(`: store one with 'credhelper put' or 'credhelper generate'`), "store one with 'credhelper put' or 'credhelper generate'"},
	{regexp.MustCompile(`: store a new (one|pair) with 'credhelper generate' or 'credhelper put'`), "store a new pair with 'credhelper generate' or 'credhelper put'"},
	{regexp.MustCompile(`: pass --issuer or set issuer in the profile`), "pass --issuer or set issuer in the profile"},
	// The backend says the same in its own words right after.
	{regexp.MustCompile(`refresh: no credential stored under \S+: `), ""},
}

func trimCarriedHints(msg string) (string, string) {
	var found string
	for _, c := range carried {
		if loc := c.re.FindStringIndex(msg); loc != nil {
			msg = msg[:loc[0]] + msg[loc[1]:]
			if found == "" {
				found = c.hint
			}
		}
	}
	return msg, found
}
