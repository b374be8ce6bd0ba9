package provider

import "fmt"

// CleanSecret prepares a secret read from an environment variable or a
// file: one trailing newline ("\n" or "\r\n") is removed, as the shell's
// $(cat FILE) does, and a value that still holds a control character is
// refused, because it could never be sent as it is and would otherwise fail
// later with a misleading error. source names where the value came from
// ("$MOMENTO_SESSION_TOKEN", "file /run/secret"); the error names it and
// the offending byte's position, never the value.
func CleanSecret(value, source string) (string, error) {
	if n := len(value); n > 0 && value[n-1] == '\n' {
		value = value[:n-1]
		if n > 1 && value[n-2] == '\r' {
			value = value[:n-2]
		}
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("provider: %s contains a control character (byte %d of %d): a secret must be one line of printable text", source, i+1, len(value))
		}
	}
	return value, nil
}
