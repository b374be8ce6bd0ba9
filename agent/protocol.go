package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// ProtocolVersion is the version of the socket protocol this package
// speaks. A change that old clients or servers cannot read increments it.
const ProtocolVersion = 1

// MaxRequest and MaxResponse bound one request or response line, newline
// included. Requests are tiny; responses carry one auth token (a few KiB at most) or
// the status of every profile.
const (
	MaxRequest  = 4 << 10
	MaxResponse = 1 << 20
)

// Operations a Request names.
const (
	OpGet    = "get"
	OpStatus = "status"
	OpPing   = "ping"
)

// Request is one line a client sends.
type Request struct {
	// V is ProtocolVersion.
	V int `json:"v"`
	// Op is OpGet, OpStatus or OpPing.
	Op string `json:"op"`
	// Profile names the profile for OpGet.
	Profile string `json:"profile,omitempty"`
	// Config is the absolute path of the config file the client would
	// read. When it is set and is not the agent's own config file, the
	// agent answers KindUnknownProfile, so a caller with another config
	// never gets the agent's credential for a profile of the same name.
	Config string `json:"config,omitempty"`
	// Endpoint, when set, is an endpoint the caller requires in addition
	// to the profile's own.
	Endpoint string `json:"endpoint,omitempty"`
}

// Response is one line the agent sends back.
type Response struct {
	// V is ProtocolVersion.
	V int `json:"v"`

	// Token is the auth token (OpGet). The refresh token is never sent.
	Token string `json:"token,omitempty"`
	// ValidUntil is the pair's expiry in Unix seconds, 0 for never.
	ValidUntil int64 `json:"validUntil,omitempty"`
	// Endpoint is the endpoint the token is valid for, when known.
	Endpoint string `json:"endpoint,omitempty"`
	// Generation is the pair's generation.
	Generation uint64 `json:"generation,omitempty"`

	// Error is a one-line message without secrets; Kind classifies it.
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"`
	// Kinds lists every provider.Kind of the error, Kind first.
	Kinds []string `json:"kinds,omitempty"`
	// Transient marks an error that may succeed when retried.
	Transient bool `json:"transient,omitempty"`
	// Want and Have name the endpoints of a KindEndpointMismatch.
	Want string `json:"want,omitempty"`
	Have string `json:"have,omitempty"`

	// PID and AgentVersion answer OpPing and OpStatus.
	PID          int    `json:"pid,omitempty"`
	AgentVersion string `json:"agentVersion,omitempty"`
	// Profiles answers OpStatus.
	Profiles []ProfileStatus `json:"profiles,omitempty"`
	// Reloads counts the configuration reloads the agent has finished
	// (OpPing, OpStatus); ReloadError says why the last one was refused,
	// empty when it was applied.
	Reloads     uint64 `json:"reloads,omitempty"`
	ReloadError string `json:"reloadError,omitempty"`
}

// ProfileStatus is what OpStatus reports about one profile: never a token.
type ProfileStatus struct {
	Name       string `json:"name"`
	Generation uint64 `json:"generation"`
	// ValidUntil is Unix seconds, 0 for never or before the first load.
	ValidUntil int64 `json:"validUntil"`
	Never      bool  `json:"neverExpires,omitempty"`
	Loaded     bool  `json:"loaded"`
	// NextRefresh is when the keeper next wakes, Unix seconds; 0 if it
	// does not (never-expiring pair, or no keeper).
	NextRefresh int64 `json:"nextRefresh,omitempty"`
	// LastError is the keeper's last failure, empty after a success.
	LastError string `json:"lastError,omitempty"`
	// Served counts successful gets of this profile.
	Served uint64 `json:"served"`
}

// Error kinds. Those of provider errors are provider.Kind names (the one
// table of error kinds); the others are the agent's own.
const (
	KindNotFound        = string(provider.KindNotFound)
	KindExpired         = string(provider.KindExpired)
	KindLineageBroken   = string(provider.KindLineageBroken)
	KindRefreshRejected = string(provider.KindRefreshRejected)
	KindPermission      = string(provider.KindPermission)
	KindInvalidRecord   = string(provider.KindInvalidRecord)
	KindInvalidToken    = string(provider.KindInvalidToken)
	KindReadOnly        = string(provider.KindReadOnly)
	KindConflict        = string(provider.KindConflict)
	KindUnsupported     = string(provider.KindUnsupported)
	KindTimeout         = string(provider.KindDeadlineExceeded)
	// KindEndpointMismatch carries Want and Have.
	KindEndpointMismatch = "endpoint_mismatch"
	// KindFailed is an error of no kind.
	KindFailed = "failed"
	// KindUnknownProfile: the agent does not serve the profile (or serves
	// another config file); the client falls back to direct resolution.
	KindUnknownProfile = "unknown_profile"
	// KindBadRequest and KindBadVersion report a malformed request.
	KindBadRequest = "bad_request"
	KindBadVersion = "bad_version"
)

// legacyTimeout is what agents before the provider kind table sent for a
// deadline; clients still read it.
const legacyTimeout = "timeout"

// ErrorResponse classifies err into a Response. The message is err's text:
// every error in this module is free of secrets by contract.
func ErrorResponse(err error) Response {
	r := Response{V: ProtocolVersion, Error: err.Error(), Kind: KindFailed, Transient: provider.IsTransient(err)}
	var mm *provider.EndpointMismatchError
	if errors.As(err, &mm) {
		r.Kind, r.Want, r.Have = KindEndpointMismatch, mm.Want, mm.Have
		return r
	}
	for i, k := range provider.KindsOf(err) {
		if i == 0 {
			r.Kind = string(k)
		}
		r.Kinds = append(r.Kinds, string(k))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		r.Transient = true
	}
	return r
}

// Error is an error the agent reported for a request. It unwraps to the
// errors its kinds stand for (and to a *provider.TransientError when
// Transient), so errors.Is and provider.IsTransient work on it as on the
// error the engine returned inside the agent.
type Error struct {
	Kind      string
	Message   string
	Transient bool
	// Kinds are every provider.Kind the error was of, Kind first; agents
	// that predate them send Kind alone.
	Kinds []string
	// Want and Have are set for KindEndpointMismatch.
	Want, Have string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (answered by credhelper agent)", e.Message)
}

// Unwrap returns the error of each kind and, for a transient error, a
// *provider.TransientError.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind == KindEndpointMismatch {
		errs = append(errs, &provider.EndpointMismatchError{Want: e.Want, Have: e.Have})
	}
	names := e.Kinds
	if len(names) == 0 {
		names = []string{e.Kind}
	}
	for _, name := range names {
		if name == legacyTimeout {
			name = KindTimeout
		}
		if err := provider.Kind(name).Err(); err != nil {
			errs = append(errs, err)
		}
	}
	if e.Transient {
		errs = append(errs, &provider.TransientError{Err: errors.New(e.Kind)})
	}
	return errs
}

// pairOf rebuilds the pair a get response carries (without refresh token).
func (r *Response) pairOf() provider.Pair {
	p := provider.Pair{AuthToken: r.Token, Endpoint: r.Endpoint, Generation: r.Generation}
	if r.ValidUntil != 0 {
		p.ValidUntil = time.Unix(r.ValidUntil, 0)
	}
	return p
}
