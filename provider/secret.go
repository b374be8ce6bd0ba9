package provider

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// maxSecret bounds a secret read from a variable or a file.
const maxSecret = 64 << 10

// CleanSecret prepares a secret read from an environment variable or a
// file: one trailing newline ("\n" or "\r\n") is removed, as the shell's
// $(cat FILE) does, and a value that is then empty, over 64 KiB, not UTF-8
// or holding a control character (C0, DEL or C1, such as U+0085) is
// refused, because it could never be sent as it is and would otherwise
// fail later with a misleading error. source names where the value came
// from ("$MOMENTO_SESSION_TOKEN", "file /run/secret"); the error names it
// and the offending position, never the value.
func CleanSecret(value, source string) (string, error) {
	if n := len(value); n > 0 && value[n-1] == '\n' {
		value = value[:n-1]
		if n > 1 && value[n-2] == '\r' {
			value = value[:n-2]
		}
	}
	switch {
	case value == "":
		return "", fmt.Errorf("provider: %s is empty", source)
	case len(value) > maxSecret:
		return "", fmt.Errorf("provider: %s is %d bytes, over the %d-byte limit for a secret", source, len(value), maxSecret)
	case !utf8.ValidString(value):
		return "", fmt.Errorf("provider: %s is not UTF-8 text", source)
	}
	for i, r := range value {
		if unicode.IsControl(r) {
			return "", fmt.Errorf("provider: %s contains a control character (byte %d of %d): a secret must be one line of printable text", source, i+1, len(value))
		}
	}
	return value, nil
}
