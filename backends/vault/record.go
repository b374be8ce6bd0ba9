package vault

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/credhelper/credhelper/provider"
)

// toData turns the opaque record bytes into the secret's key/value map. The
// value must be one JSON object; numbers keep their exact text.
func toData(value []byte) (map[string]any, error) {
	if len(value) > provider.MaxRecordSize {
		return nil, fmt.Errorf("vault: value is %d bytes, over the %d-byte limit: %w", len(value), provider.MaxRecordSize, provider.ErrInvalidRecord)
	}
	if !utf8.Valid(value) {
		return nil, fmt.Errorf("vault: value is not UTF-8 text; a Vault secret holds a JSON object of fields: %w", provider.ErrInvalidRecord)
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil || data == nil {
		return nil, fmt.Errorf("vault: value is not a JSON object; a Vault secret holds a record's fields as its keys: %w", provider.ErrInvalidRecord)
	}
	if dec.More() {
		return nil, fmt.Errorf("vault: value has data after its JSON object: %w", provider.ErrInvalidRecord)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("vault: value is an empty JSON object; KV v2 refuses a secret without keys: %w", provider.ErrInvalidRecord)
	}
	return data, nil
}

// fromData turns a secret's key/value map back into record bytes: a compact
// JSON object with keys in sorted order, as provider.Record.Encode writes it.
func fromData(data map[string]any) ([]byte, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("vault: secret's data does not encode as JSON: %w", provider.ErrInvalidRecord)
	}
	return b, nil
}

// formatVersion and parseVersion convert between KV version numbers and
// provider.Version. Version 0 is never stored: it means "no version".
func formatVersion(v uint64) provider.Version { return provider.Version(strconv.FormatUint(v, 10)) }

func parseVersion(v provider.Version) (uint64, bool) {
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil || n == 0 || formatVersion(n) != v {
		return 0, false
	}
	return n, true
}

// versionOf reads a KV version number from a JSON value as decoded by the
// Vault API client (json.Number), or from a plain number.
func versionOf(raw any) (uint64, bool) {
	switch v := raw.(type) {
	case json.Number:
		n, err := strconv.ParseUint(v.String(), 10, 64)
		return n, err == nil
	case float64:
		if v < 0 || v != float64(uint64(v)) {
			return 0, false
		}
		return uint64(v), true
	case int:
		return uint64(v), v >= 0
	default:
		return 0, false
	}
}
