package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// message is the one line the command prints for err: the library's facts,
// then the command's advice for that kind of error, said once.
func message(err error) string {
	msg := oneLine(err.Error())
	// A sentinel's own text at the end repeats what the message says.
	for _, k := range provider.KindsOf(err) {
		if t := ": " + k.Err().Error(); strings.HasSuffix(msg, t) && len(msg) > len(t) {
			msg = strings.TrimSuffix(msg, t)
		}
	}
	h := hint(err)
	if h == "" || strings.Contains(msg, h) {
		return msg
	}
	return msg + ": " + h
}

// hint is the command's advice for a kind of error. Libraries state facts
// only; what to run or which setting to change is the command's to say,
// in the words a user types.
func hint(err error) string {
	var (
		le *refresh.LifetimeError
		ro *refresh.ReadOnlyError
		ee *refresh.ExpiredError
	)
	switch {
	case errors.As(err, &le):
		return fmt.Sprintf("lower --min-validity (min_validity) well below %v, or have the issuer mint pairs that live longer", le.Lifetime)
	case errors.As(err, &ro):
		return "store the credential where a refreshed pair can be written (file:, awssm:, vault:, a writable plugin), or let one long-running 'credhelper agent' hold its chain with unsafe_refresh_in_memory"
	case errors.As(err, &ee), errors.Is(err, provider.ErrLineageBroken):
		return "store a new pair with 'credhelper generate' or 'credhelper put'"
	case errors.Is(err, provider.ErrNotFound):
		return "store one with 'credhelper put' or 'credhelper generate'"
	case errors.Is(err, refresh.ErrNoIssuer):
		return "pass --issuer or set issuer in the profile"
	}
	return ""
}
