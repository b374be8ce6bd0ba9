package plugins

import (
	"errors"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credhelper/credhelper/provider"
)

// MaxErrorMessage is the longest error text, in bytes, that crosses the
// plugin boundary; longer messages are truncated on both sides.
const MaxErrorMessage = 1024

// errorDomain is the google.rpc.ErrorInfo domain of errors this protocol
// version encodes.
const errorDomain = "credhelper.plugin.v1"

// ErrorInfo metadata keys.
const (
	metaKinds     = "kinds"
	metaTransient = "transient"
)

// reasonUnknown is the ErrorInfo reason of an error that wraps no known kind.
const reasonUnknown = "UNKNOWN"

// errConnection marks a failure of the connection to the plugin process
// rather than an error the plugin returned.
var errConnection = errors.New("connection to the plugin process failed")

// kindCodes is the gRPC status code a plugin reports each provider.Kind
// with; the ErrorInfo reason is the kind's name in upper case. A test fails
// when a kind has no code here.
var kindCodes = map[provider.Kind]codes.Code{
	provider.KindNotFound:         codes.NotFound,
	provider.KindConflict:         codes.Aborted,
	provider.KindReadOnly:         codes.FailedPrecondition,
	provider.KindRefreshRejected:  codes.Unauthenticated,
	provider.KindLineageBroken:    codes.FailedPrecondition,
	provider.KindExpired:          codes.FailedPrecondition,
	provider.KindInvalidRecord:    codes.InvalidArgument,
	provider.KindInvalidToken:     codes.InvalidArgument,
	provider.KindPermission:       codes.PermissionDenied,
	provider.KindNoIssuer:         codes.FailedPrecondition,
	provider.KindUnsupported:      codes.Unimplemented,
	provider.KindNotDelivered:     codes.Unavailable,
	provider.KindDeadlineExceeded: codes.DeadlineExceeded,
	provider.KindCanceled:         codes.Canceled,
}

// reasonOf and kindOfReason convert between a kind and its ErrorInfo
// reason.
func reasonOf(k provider.Kind) string { return strings.ToUpper(string(k)) }

func kindOfReason(reason string) provider.Kind { return provider.Kind(strings.ToLower(reason)) }

// toStatus encodes err, returned by a served backend or issuer, as a gRPC
// status error that keeps its kinds and transience. It is the only way
// errors leave a plugin.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var names []string
	code := codes.Unknown
	for i, k := range provider.KindsOf(err) {
		if i == 0 {
			code = kindCodes[k]
		}
		names = append(names, reasonOf(k))
	}
	transient := provider.IsTransient(err)
	if transient && code != codes.DeadlineExceeded {
		code = codes.Unavailable
	}
	reason := reasonUnknown
	if len(names) > 0 {
		reason = names[0]
	}
	info := &errdetails.ErrorInfo{
		Domain: errorDomain,
		Reason: reason,
		Metadata: map[string]string{
			metaKinds:     strings.Join(names, ","),
			metaTransient: strconv.FormatBool(transient),
		},
	}
	st, detErr := status.New(code, cleanMessage(err.Error())).WithDetails(info)
	if detErr != nil {
		return status.Error(code, cleanMessage(err.Error()))
	}
	return st.Err()
}

// fromStatus decodes an error from a gRPC call into the plugin: an error
// that wraps the kinds the plugin reported and, when transient, a
// *provider.TransientError. Errors the plugin did not encode (a non-Go
// plugin without the detail, or a failure of the connection itself) are
// classified by their status code alone.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return provider.Transient(connectionError(err.Error()))
	}
	re := provider.NewError(cleanMessage(st.Message()), nil)
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != errorDomain {
			continue
		}
		kinds := info.GetMetadata()[metaKinds]
		if _, present := info.GetMetadata()[metaKinds]; !present {
			kinds = info.GetReason()
		}
		for _, name := range strings.Split(kinds, ",") {
			if k := kindOfReason(name); k.Valid() {
				re.Kinds = append(re.Kinds, k)
			}
		}
		if info.GetMetadata()[metaTransient] == "true" {
			return provider.Transient(re)
		}
		return re
	}
	switch st.Code() {
	case codes.NotFound:
		re.Kinds = []provider.Kind{provider.KindNotFound}
	case codes.Aborted:
		re.Kinds = []provider.Kind{provider.KindConflict}
	case codes.PermissionDenied:
		re.Kinds = []provider.Kind{provider.KindPermission}
	case codes.Unauthenticated:
		re.Kinds = []provider.Kind{provider.KindRefreshRejected}
	case codes.Unimplemented:
		re.Kinds = []provider.Kind{provider.KindUnsupported}
	case codes.Canceled:
		re.Kinds = []provider.Kind{provider.KindCanceled}
	case codes.DeadlineExceeded:
		re.Kinds = []provider.Kind{provider.KindDeadlineExceeded}
		return provider.Transient(re)
	case codes.ResourceExhausted:
		return provider.Transient(re)
	case codes.Unavailable:
		// Without our detail, Unavailable comes from gRPC itself: the
		// connection to the process failed, perhaps after the request was
		// sent. It never means "not delivered".
		return provider.Transient(connectionError(st.Message()))
	}
	return re
}

// connectionError is a failure of the connection to the plugin process,
// with the text gRPC gave for it.
func connectionError(msg string) error {
	return &provider.Error{Msg: cleanMessage(msg), Err: errConnection}
}

// cleanMessage makes relayed text one line of valid UTF-8 of at most
// MaxErrorMessage bytes.
func cleanMessage(s string) string { return provider.SanitizeMessage(s, MaxErrorMessage) }
