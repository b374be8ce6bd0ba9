// Package env is a read-only backend that reads a credential from
// environment variables, as CI systems and container platforms inject it.
//
// For key PREFIX it reads, in order of preference:
//   - PREFIX holding the whole JSON record ({"apiKey", "refreshToken",
//     "validUntil", ...}), or
//   - PREFIX_API_KEY, PREFIX_REFRESH_TOKEN, PREFIX_VALID_UNTIL (epoch
//     seconds, 0 or empty for never) and optionally PREFIX_ENDPOINT.
//
// CompareAndSwap always fails with provider.ErrReadOnly: a process cannot
// change its parent's environment. The refresh engine refreshes such a
// credential in memory only.
package env
