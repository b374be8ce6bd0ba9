package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// Environment variables. Every setting with a flag also has a variable,
// EnvPrefix followed by the flag's name in upper case with - as _
// (--min-validity: CREDHELPER_MIN_VALIDITY); these are the ones other
// packages name, such as the small front binary.
const (
	EnvPrefix           = "CREDHELPER_"
	EnvConfig           = "CREDHELPER_CONFIG"
	EnvProfile          = "CREDHELPER_PROFILE"
	EnvBackend          = "CREDHELPER_BACKEND"
	EnvIssuer           = "CREDHELPER_ISSUER"
	EnvEndpoint         = "CREDHELPER_ENDPOINT"
	EnvMinValidity      = "CREDHELPER_MIN_VALIDITY"
	EnvLogLevel         = "CREDHELPER_LOG_LEVEL"
	EnvNoAgent          = "CREDHELPER_NO_AGENT"
	EnvFull             = "CREDHELPER_FULL"
	EnvAgentSocket      = "CREDHELPER_AGENT_SOCKET"
	EnvAgentMetricsAddr = "CREDHELPER_AGENT_METRICS_ADDR"
)

// Command holds the settings that are not part of a profile: which file
// and profile to use and how the command itself runs. They come from flags
// and the environment only.
type Command struct {
	Config   string `flag:"config" shown:"$XDG_CONFIG_HOME/credhelper/config.toml" help:"the config file"`
	Profile  string `flag:"profile" default:"default" help:"profile in the config file"`
	LogLevel string `flag:"log-level" shown:"warn; the agent's info" help:"stderr log level: debug, info, warn or error"`
	NoAgent  bool   `env:"CREDHELPER_NO_AGENT" help:"resolve credentials directly, never through a running agent"`
	Full     string `env:"CREDHELPER_FULL" help:"the full binary that the small front credhelper executes (default: credhelper-full beside it)"`
}

// Scope is where a setting is written.
type Scope string

// Scopes of settings.
const (
	// ScopeCommand settings come from flags and the environment only.
	ScopeCommand Scope = "command"
	// ScopeProfile settings are written in [profiles.NAME] (or
	// [defaults]), some in a per-kind table such as [profiles.NAME.vault].
	ScopeProfile Scope = "profile"
	// ScopeAgent settings are written in [agent].
	ScopeAgent Scope = "agent"
	// ScopePlugin settings are written in [plugins.NAME].
	ScopePlugin Scope = "plugin"
)

// Setting is one entry of the settings table: everything the command, the
// config file parser and the README reference know about one setting. It
// is read from the struct tags of Command, Profile, Agent and Plugin, so a
// setting is declared exactly once.
type Setting struct {
	// Scope is where it is written.
	Scope Scope
	// Path is its key inside its scope, with the per-kind table if any:
	// "min_validity", "vault.role_id". For command settings it is the flag
	// (or variable) name.
	Path string
	// Type is what it holds, in words: string, duration, number, integer,
	// boolean, list of strings.
	Type string
	// Help says what it does.
	Help string
	// Default is the built-in value, applied when nothing else sets it;
	// Shown is what the reference prints when the default is derived
	// rather than a literal.
	Default, Shown string
	// Flag is the command-line flag without dashes, Env the environment
	// variable; either may be empty.
	Flag, Env string
	// Flat is the old key at the profile's top level that still sets it
	// (deprecated).
	Flat string
	// Example is a value as written in TOML, for messages.
	Example string
	// Positive: a duration that must be longer than zero ("0s" is an
	// error rather than "unset"; tag nonzero:"yes").
	Positive bool

	index   []int
	inherit bool
	whole   string // the table it belongs to if that is inherited as a whole
	kind    reflect.Type
}

// Key returns the setting's last key ("role_id" for "vault.role_id").
func (s Setting) Key() string {
	if i := strings.LastIndexByte(s.Path, '.'); i >= 0 {
		return s.Path[i+1:]
	}
	return s.Path
}

// Table returns the per-kind table the setting is written in ("vault"), or
// "" for the top level of its scope.
func (s Setting) Table() string {
	if i := strings.LastIndexByte(s.Path, '.'); i >= 0 {
		return s.Path[:i]
	}
	return ""
}

// ExampleValue returns a TOML value for the setting, for messages: its
// example, else its default, else one of its type.
func (s Setting) ExampleValue() string {
	switch {
	case s.Example != "":
		return s.Example
	case s.Default != "" && s.Type == "number", s.Default != "" && s.Type == "boolean":
		return s.Default
	case s.Default != "":
		return strconv.Quote(s.Default)
	}
	switch s.Type {
	case "duration":
		return `"90s"`
	case "number":
		return "0.5"
	case "integer":
		return "3"
	case "boolean":
		return "true"
	case "list of strings":
		return `["a", "b"]`
	}
	return `"..."`
}

// field returns the setting's field in root, a pointer to the struct its
// scope is read into (*Profile, *Command, *Agent or *Plugin).
func (s Setting) field(root any) reflect.Value {
	return reflect.ValueOf(root).Elem().FieldByIndex(s.index)
}

// SetText parses text as the command line and the environment write the
// setting (a list is comma-separated) and stores it in root, a pointer to
// the struct of the setting's scope. The error says what was expected.
func (s Setting) SetText(root any, text string) error {
	v, err := parseText(s.kind, text)
	if errors.Is(err, errNegativeDuration) {
		return err
	}
	if err == nil && s.Positive && v.Interface().(Duration).Duration == 0 {
		return fmt.Errorf("%q: %w", text, errZeroDuration)
	}
	if err != nil {
		return fmt.Errorf("%q is not a %s: %w", text, s.Type, err)
	}
	s.field(root).Set(v)
	return nil
}

// Text returns the setting's value in root as SetText reads it; "" when
// unset.
func (s Setting) Text(root any) string {
	v := s.field(root)
	if v.IsZero() {
		return ""
	}
	switch x := v.Interface().(type) {
	case Duration:
		return x.String()
	case []string:
		return strings.Join(x, ",")
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v.Interface())
}

var durationType = reflect.TypeFor[Duration]()

func parseText(t reflect.Type, text string) (reflect.Value, error) {
	v := reflect.New(t).Elem()
	switch {
	case t == durationType:
		var d Duration
		if err := d.UnmarshalText([]byte(text)); errors.Is(err, errNegativeDuration) {
			return v, err
		} else if err != nil {
			return v, fmt.Errorf("write a number with a unit, such as 90s or 5m")
		}
		v.Set(reflect.ValueOf(d))
	case t.Kind() == reflect.String:
		v.SetString(text)
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return v, fmt.Errorf("write true or false")
		}
		v.SetBool(b)
	case t.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return v, fmt.Errorf("write a number such as 0.25")
		}
		v.SetFloat(f)
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return v, fmt.Errorf("write a whole number")
		}
		v.SetInt(n)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		var parts []string
		for _, p := range strings.Split(text, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return v, fmt.Errorf("cannot be set from text")
	}
	return v, nil
}

// typeName names what a field holds, in the reference's words.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() == reflect.Float64:
		return "number"
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		return "integer"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "list of strings"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return "array of tables"
	case t.Kind() == reflect.Struct:
		return "table"
	}
	return t.String()
}

// isTable reports whether a field of type t is written as a table (or an
// array of tables) of further settings.
func isTable(t reflect.Type) bool {
	return t != durationType && (t.Kind() == reflect.Struct || t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct)
}

// Settings returns the settings table: every setting of Command, Profile,
// Agent and Plugin, in declaration order.
func Settings() []Setting { return allSettings() }

var allSettings = sync.OnceValue(func() []Setting {
	var out []Setting
	out = append(out, settingsOf(ScopeCommand, reflect.TypeFor[Command]())...)
	out = append(out, settingsOf(ScopeProfile, reflect.TypeFor[Profile]())...)
	out = append(out, settingsOf(ScopeAgent, reflect.TypeFor[Agent]())...)
	out = append(out, settingsOf(ScopePlugin, reflect.TypeFor[Plugin]())...)
	return out
})

// Lookup returns the setting of scope at path ("vault.role_id").
func Lookup(scope Scope, path string) (Setting, bool) {
	for _, s := range Settings() {
		if s.Scope == scope && s.Path == path {
			return s, true
		}
	}
	return Setting{}, false
}

// LookupFlag returns the setting whose flag is name.
func LookupFlag(name string) (Setting, bool) {
	for _, s := range Settings() {
		if s.Flag == name {
			return s, true
		}
	}
	return Setting{}, false
}

// settingsOf reads the leaf settings of struct type t, descending into
// tables (but not into arrays of tables, whose entries are settings of
// their own tables).
// fieldSetting is what a struct field's tags say of the setting at path:
// its type, help, defaults, flag, variable, flat key, example and whether
// it must be positive (tag nonzero:"yes").
func fieldSetting(f reflect.StructField, path string) Setting {
	return Setting{
		Path: path, Type: typeName(f.Type),
		Help: f.Tag.Get("help"), Default: f.Tag.Get("default"), Shown: f.Tag.Get("shown"),
		Flag: f.Tag.Get("flag"), Env: f.Tag.Get("env"), Flat: f.Tag.Get("flat"), Example: f.Tag.Get("example"),
		Positive: f.Tag.Get("nonzero") == "yes",
		kind:     f.Type,
	}
}

func settingsOf(scope Scope, t reflect.Type) []Setting {
	var out []Setting
	var walk func(t reflect.Type, prefix string, index []int, inherit bool, whole string)
	walk = func(t reflect.Type, prefix string, index []int, inherit bool, whole string) {
		for i := range t.NumField() {
			f := t.Field(i)
			key := f.Tag.Get("toml")
			if scope == ScopeCommand {
				key = f.Tag.Get("flag")
				if key == "" {
					key = strings.ToLower(strings.TrimPrefix(f.Tag.Get("env"), EnvPrefix))
				}
			}
			if key == "" || key == "-" || !f.IsExported() {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			inh := inherit && f.Tag.Get("inherit") != "no"
			if isTable(f.Type) && f.Type.Kind() == reflect.Struct {
				w := whole
				if f.Tag.Get("inherit") == "whole" {
					w = prefix + key
				}
				walk(f.Type, prefix+key+".", idx, inh, w)
				continue
			}
			s := fieldSetting(f, prefix+key)
			s.Scope, s.index, s.inherit, s.whole = scope, idx, inh, whole
			if s.Env == "" && s.Flag != "" {
				s.Env = EnvPrefix + strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_"))
			}
			if s.Env == "-" {
				s.Env = ""
			}
			out = append(out, s)
		}
	}
	walk(t, "", nil, true, "")
	return out
}

// inherits reports whether own takes s from [defaults] when own leaves it
// unset: not in a table tagged inherit:"no", nor in a table tagged
// inherit:"whole" that own sets any of.
func (s Setting) inherits(own *Profile) bool {
	return s.inherit && (s.whole == "" || !own.HasTable(s.whole))
}

// settingsIn returns the settings of scope (shared: callers must not
// modify it). Resolving a profile asks for them many times, so they are
// sorted by scope once.
func settingsIn(scope Scope) []Setting { return settingsByScope()[scope] }

var settingsByScope = sync.OnceValue(func() map[Scope][]Setting {
	out := map[Scope][]Setting{}
	for _, s := range Settings() {
		out[s.Scope] = append(out[s.Scope], s)
	}
	return out
})

// ReadEnv sets every setting of scope that has an environment variable
// and a value in getenv into root (a *Command, *Profile or *Agent). It
// returns the first variable that does not parse, naming it.
func ReadEnv(scope Scope, root any, getenv func(string) string) error {
	for _, s := range settingsIn(scope) {
		if s.Env == "" {
			continue
		}
		v := getenv(s.Env)
		if v == "" {
			continue
		}
		if err := s.SetText(root, v); err != nil {
			return fmt.Errorf("$%s: %w", s.Env, err)
		}
	}
	return nil
}
