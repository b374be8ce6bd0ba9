package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Problem is one mistake in a config file, with where it is and what to do.
type Problem struct {
	// File is the file's path; empty until Load sets it.
	File string
	// Line is the line of the key, starting at 1; 0 if unknown.
	Line int
	// Scope is what the problem belongs to: "profile NAME", "defaults",
	// "plugin NAME", "agent", or "" for the file as a whole. A command
	// fails only for the problems of what it uses.
	Scope string
	// Msg says what is wrong and what to write instead.
	Msg string
}

func (p Problem) Error() string {
	switch {
	case p.File != "" && p.Line > 0:
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	case p.File != "":
		return p.File + ": " + p.Msg
	case p.Line > 0:
		return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
	}
	return p.Msg
}

// Problem scopes.
const scopeDefaults = "defaults"

func profileScope(name string) string { return "profile " + name }
func pluginScope(name string) string  { return "plugin " + name }

// ProfileError reports that a profile (or [defaults], which every profile
// inherits, or a plugin it uses) has problems.
type ProfileError struct {
	// Profile is the profile's name.
	Profile string
	// Problems are the mistakes, in file order.
	Problems []Problem
}

func (e *ProfileError) Error() string {
	first := e.Problems[0].Error()
	switch n := len(e.Problems); n {
	case 1:
		return fmt.Sprintf("config: profile %q cannot be used: %s", e.Profile, first)
	default:
		return fmt.Sprintf("config: profile %q cannot be used: %s (and %d more: credhelper config check lists them)", e.Profile, first, n-1)
	}
}

// problemsOf returns a *ProfileError for profile name with the problems of
// the given scopes, or nil if there are none.
func (f *File) problemsOf(name string, scopes ...string) error {
	var ps []Problem
	for _, p := range f.Problems {
		for _, s := range scopes {
			if p.Scope == s {
				ps = append(ps, p)
			}
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return &ProfileError{Profile: name, Problems: ps}
}

// PluginProblems returns a *ProfileError naming profile for the problems
// of [plugins.plugin], or nil.
func (f *File) PluginProblems(profile, plugin string) error {
	return f.problemsOf(profile, pluginScope(plugin))
}

// AgentProblems returns the problems of [agent] as an error, or nil.
func (f *File) AgentProblems() error {
	for _, p := range f.Problems {
		if p.Scope == "agent" {
			return fmt.Errorf("config: [agent] cannot be used: %w", p)
		}
	}
	return nil
}

// Parse decodes a configuration. Only text that is not TOML is an error;
// every other mistake (an unknown setting, a value of the wrong type, a
// secret written inline) becomes a Problem scoped to where it is, with its
// line and, where one is near, the setting that was probably meant.
func Parse(data []byte) (*File, error) {
	var raw map[string]any
	if err := toml.Unmarshal(data, &raw); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, _ := de.Position()
			return nil, fmt.Errorf("line %d: %s: the file is not valid TOML", row, oneLine(de.Error()))
		}
		return nil, fmt.Errorf("the file is not valid TOML: %s", oneLine(err.Error()))
	}
	d := &decoder{lines: keyLines(data), f: &File{}}
	d.f.lines = d.lines
	d.file(raw)
	sort.SliceStable(d.f.Problems, func(i, j int) bool { return d.f.Problems[i].Line < d.f.Problems[j].Line })
	return d.f, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// decoder turns the generic TOML tree into a File, recording problems.
type decoder struct {
	lines map[string]int
	f     *File
}

// path is a key path in the document.
type path []string

func (p path) add(k string) path { return append(append(path(nil), p...), k) }

func (p path) String() string { return strings.Join(p, "\x00") }

// table renders the table p names as a header: [profiles.a.vault].
func (p path) table() string {
	parts := make([]string, 0, len(p))
	for _, k := range p {
		if strings.HasPrefix(k, "[") { // array index
			continue
		}
		parts = append(parts, quoteKey(k))
	}
	if len(p) > 0 && strings.HasPrefix(p[len(p)-1], "[") {
		// An element of an array of tables, written [[profiles.a.sink]].
		return "[[" + strings.Join(parts, ".") + "]]"
	}
	return "[" + strings.Join(parts, ".") + "]"
}

func quoteKey(k string) string {
	for _, r := range k {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return strconv.Quote(k)
		}
	}
	return k
}

// line returns the line of p, or of the nearest enclosing key known.
func (d *decoder) line(p path) int {
	for n := len(p); n > 0; n-- {
		if l, ok := d.lines[p[:n].String()]; ok {
			return l
		}
	}
	return 0
}

func (d *decoder) problem(scope string, p path, format string, args ...any) {
	d.f.Problems = append(d.f.Problems, Problem{Line: d.line(p), Scope: scope, Msg: fmt.Sprintf(format, args...)})
}

// sections are the file's top-level tables.
var sections = []string{"defaults", "profiles", "plugins", "agent"}

func (d *decoder) file(raw map[string]any) {
	for _, key := range d.sorted(nil, raw) {
		val := raw[key]
		p := path{key}
		switch key {
		case "defaults":
			if m, ok := d.table(scopeDefaults, p, val); ok {
				d.profile(scopeDefaults, p, m, &d.f.Defaults)
			}
		case "agent":
			if m, ok := d.table("agent", p, val); ok {
				d.object("agent", p, m, reflect.ValueOf(&d.f.Agent).Elem(), nil)
			}
		case "profiles":
			m, ok := d.table("", p, val)
			if !ok {
				continue
			}
			d.f.Profiles = map[string]Profile{}
			for _, name := range d.sorted(p, m) {
				var prof Profile
				if pm, ok := d.table(profileScope(name), p.add(name), m[name]); ok {
					d.profile(profileScope(name), p.add(name), pm, &prof)
				}
				d.f.Profiles[name] = prof
			}
		case "plugins":
			m, ok := d.table("", p, val)
			if !ok {
				continue
			}
			d.f.Plugins = map[string]Plugin{}
			for _, name := range d.sorted(p, m) {
				var pl Plugin
				if pm, ok := d.table(pluginScope(name), p.add(name), m[name]); ok {
					d.object(pluginScope(name), p.add(name), pm, reflect.ValueOf(&pl).Elem(), nil)
				}
				d.f.Plugins[name] = pl
			}
		default:
			msg := fmt.Sprintf("unknown section %s", p.table())
			if near := nearest(key, sections); near != "" {
				msg += fmt.Sprintf(": did you mean [%s]?", near)
			} else {
				msg += ": the sections are [defaults], [profiles.NAME], [plugins.NAME] and [agent]"
			}
			d.problem("", p, "%s", msg)
		}
	}
}

// table checks that val is a table.
func (d *decoder) table(scope string, p path, val any) (map[string]any, bool) {
	m, ok := val.(map[string]any)
	if !ok {
		d.problem(scope, p, "%s must be a table, written as a %s header line", p[len(p)-1], p.table())
	}
	return m, ok
}

// sorted returns m's keys in file order.
func (d *decoder) sorted(p path, m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		li, lj := d.line(p.add(keys[i])), d.line(p.add(keys[j]))
		if li != lj {
			return li < lj
		}
		return keys[i] < keys[j]
	})
	return keys
}

// profile decodes a profile (or [defaults]), reading the deprecated flat
// keys into their per-kind tables.
func (d *decoder) profile(scope string, p path, m map[string]any, dst *Profile) {
	flat := map[string]Setting{}
	for _, s := range settingsIn(ScopeProfile) {
		if s.Flat != "" {
			flat[s.Flat] = s
		}
	}
	var deprecated []string
	d.object(scope, p, m, reflect.ValueOf(dst).Elem(), func(key string, val any) bool {
		s, ok := flat[key]
		if !ok {
			return false
		}
		// A flat key the table also sets is dropped: the table wins.
		if t, ok := m[s.Table()].(map[string]any); ok {
			if _, set := t[s.Key()]; set {
				deprecated = append(deprecated, key)
				return true
			}
		}
		if d.value(scope, p.add(key), s, val, s.field(dst)) {
			deprecated = append(deprecated, key)
		}
		return true
	})
	for _, key := range deprecated {
		s := flat[key]
		d.f.Deprecated = append(d.f.Deprecated, Problem{Line: d.line(p.add(key)), Scope: scope,
			Msg: fmt.Sprintf("%s in %s is deprecated: write it as %s in %s", key, p.table(), s.Key(), p.add(s.Table()).table())})
	}
}

// object decodes table m into the struct dst, whose fields are settings
// and tables of settings. extra, when set, may claim a key the struct does
// not have.
func (d *decoder) object(scope string, p path, m map[string]any, dst reflect.Value, extra func(key string, val any) bool) {
	t := dst.Type()
	fields := map[string]int{}
	var keys []string
	for i := range t.NumField() {
		if k := t.Field(i).Tag.Get("toml"); k != "" && k != "-" && t.Field(i).IsExported() {
			fields[k] = i
			keys = append(keys, k)
		}
	}
	for _, key := range d.sorted(p, m) {
		val := m[key]
		i, ok := fields[key]
		if !ok {
			if extra == nil || !extra(key, val) {
				d.unknown(scope, p, key, t, keys)
			}
			continue
		}
		f := t.Field(i)
		fv := dst.Field(i)
		switch {
		case isTable(f.Type) && f.Type.Kind() == reflect.Struct:
			if sub, ok := d.table(scope, p.add(key), val); ok {
				d.object(scope, p.add(key), sub, fv, nil)
			}
		case isTable(f.Type): // array of tables
			arr, ok := val.([]any)
			if !ok {
				d.problem(scope, p.add(key), "%s must be an array of tables, each written under a [%s] header line", key, "["+strings.Trim(p.add(key).table(), "[]")+"]")
				continue
			}
			out := reflect.MakeSlice(f.Type, 0, len(arr))
			for n, el := range arr {
				ep := p.add(key).add("[" + strconv.Itoa(n) + "]")
				sub, ok := el.(map[string]any)
				if !ok {
					d.problem(scope, ep, "each %s must be a table", key)
					continue
				}
				ev := reflect.New(f.Type.Elem()).Elem()
				d.object(scope, ep, sub, ev, nil)
				out = reflect.Append(out, ev)
			}
			fv.Set(out)
		default:
			d.value(scope, p.add(key), fieldSetting(f, key), val, fv)
		}
	}
}

// value decodes one setting's TOML value into dst, or records a problem
// that names the expected type with an example and reports false.
func (d *decoder) value(scope string, p path, s Setting, val any, dst reflect.Value) (decoded bool) {
	key := p[len(p)-1]
	decoded = true
	bad := func(why string) {
		decoded = false
		example := s.ExampleValue()
		if str, ok := val.(string); ok && s.Type == "list of strings" {
			example = "[" + strconv.Quote(str) + "]"
			if words := strings.Fields(str); (key == "command" || key == "args") && len(words) > 1 && !strings.ContainsAny(str, "'\"\\$`|&;<>") {
				// An argv: one string per word, run without a shell.
				quoted := make([]string, len(words))
				for i, w := range words {
					quoted[i] = strconv.Quote(w)
				}
				example = "[" + strings.Join(quoted, ", ") + "]"
			}
		}
		d.problem(scope, p, "%s in %s %s: write it as %s = %s", key, p[:len(p)-1].table(), why, key, example)
	}
	t := dst.Type()
	switch {
	case t == durationType:
		str, ok := val.(string)
		if !ok {
			bad("must be a duration in quotes, not " + tomlType(val))
			return
		}
		var dur Duration
		if err := dur.UnmarshalText([]byte(str)); errors.Is(err, errNegativeDuration) {
			bad(fmt.Sprintf("is %q, a negative duration", str))
			return
		} else if err != nil {
			bad(fmt.Sprintf("is %q, not a duration", str))
			return
		} else if s.Positive && dur.Duration == 0 {
			bad(fmt.Sprintf("is %q but must be longer than zero", str))
			return
		}
		dst.Set(reflect.ValueOf(dur))
	case t.Kind() == reflect.String:
		str, ok := val.(string)
		if !ok {
			bad("must be a string, not " + tomlType(val))
			return
		}
		dst.SetString(str)
	case t.Kind() == reflect.Bool:
		b, ok := val.(bool)
		if !ok {
			bad("must be true or false, not " + tomlType(val))
			return
		}
		dst.SetBool(b)
	case t.Kind() == reflect.Float64:
		switch n := val.(type) {
		case float64:
			dst.SetFloat(n)
		case int64:
			dst.SetFloat(float64(n))
		default:
			bad("must be a number, not " + tomlType(val))
		}
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		n, ok := val.(int64)
		if !ok {
			bad("must be a whole number, not " + tomlType(val))
			return
		}
		dst.SetInt(n)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		arr, ok := val.([]any)
		if !ok {
			bad("must be a list of strings, not " + tomlType(val))
			return
		}
		out := make([]string, 0, len(arr))
		for _, el := range arr {
			str, ok := el.(string)
			if !ok {
				bad("must be a list of strings, but holds " + tomlType(el))
				return
			}
			out = append(out, str)
		}
		dst.Set(reflect.ValueOf(out))
	default:
		bad("has a type this version cannot read")
	}
	return decoded
}

// tomlType names a decoded TOML value's type for messages.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	}
	return "a date or time"
}

// unknown records a key that the table of struct type t does not have: a
// secret written inline, a setting that belongs in another table, or a
// misspelling.
func (d *decoder) unknown(scope string, p path, key string, t reflect.Type, keys []string) {
	where := p.table()
	// A secret: the table has KEY_env or KEY_file instead.
	var alts []string
	for _, k := range keys {
		if k == key+"_env" || k == key+"_file" {
			alts = append(alts, k)
		}
	}
	if t == reflect.TypeFor[Profile]() {
		for _, s := range settingsIn(ScopeProfile) {
			if s.Table() != "" && (s.Key() == key+"_env" || s.Key() == key+"_file") {
				alts = append(alts, s.Key()+" in "+p.add(s.Table()).table())
			}
		}
	}
	if len(alts) > 0 {
		d.problem(scope, p.add(key), "%s in %s: secrets are never written in the config file: name the variable that holds it with %s", key, where, strings.Join(alts, ", or the file with "))
		return
	}
	// A setting of one of the profile's per-kind tables, written at the top.
	if t == reflect.TypeFor[Profile]() {
		for _, s := range settingsIn(ScopeProfile) {
			if s.Table() != "" && s.Key() == key {
				d.problem(scope, p.add(key), "unknown setting %s in %s: did you mean %s in %s?", key, where, key, p.add(s.Table()).table())
				return
			}
		}
	}
	msg := fmt.Sprintf("unknown setting %s in %s", key, where)
	if near := nearest(key, keys); near != "" {
		msg += fmt.Sprintf(": did you mean %s?", near)
	} else if len(keys) <= 8 {
		msg += ": its settings are " + strings.Join(keys, ", ")
	} else {
		msg += ": see the settings reference in the README"
	}
	d.problem(scope, p.add(key), "%s", msg)
}

// nearest returns the candidate closest to word by edit distance, if it is
// close enough to be a likely misspelling; "" otherwise.
func nearest(word string, candidates []string) string {
	best, bestD := "", 0
	w := strings.ToLower(strings.ReplaceAll(word, "-", "_"))
	if len(w) >= 3 {
		// A shortened name: "sha" for sha256, "role" for role_id.
		for _, c := range candidates {
			if strings.HasPrefix(strings.ToLower(c), w) {
				return c
			}
		}
	}
	for _, c := range candidates {
		dist := editDistance(w, strings.ToLower(c))
		if best == "" || dist < bestD {
			best, bestD = c, dist
		}
	}
	limit := 2
	if len(word) <= 4 {
		limit = 1
	}
	if best == "" || bestD > limit || bestD >= len(word) {
		return ""
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent letters.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// Nearest returns the candidate closest to word if it is a likely
// misspelling of it, else "". The command uses it for flags and commands.
func Nearest(word string, candidates []string) string { return nearest(word, candidates) }

// keyLines maps every key path of the document to its line, using the
// TOML parser's own positions. Array-of-tables entries get an index
// element "[N]".
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	var table path
	arrays := map[string]int{}
	lineOf := func(n *unstable.Node) int {
		if n.Raw.Length == 0 && n.Raw.Offset == 0 {
			return 0
		}
		return p.Shape(n.Raw).Start.Line
	}
	keyOf := func(n *unstable.Node) (path, int) {
		var k path
		line := 0
		it := n.Key()
		for it.Next() {
			part := it.Node()
			k = append(k, string(part.Data))
			if line == 0 {
				line = lineOf(part)
			}
		}
		if line == 0 {
			line = lineOf(n)
		}
		return k, line
	}
	var inline func(prefix path, n *unstable.Node)
	inline = func(prefix path, n *unstable.Node) {
		it := n.Children()
		for it.Next() {
			kv := it.Node()
			if kv.Kind != unstable.KeyValue {
				continue
			}
			k, line := keyOf(kv)
			full := append(append(path(nil), prefix...), k...)
			for i := range k {
				if _, ok := lines[full[:len(prefix)+i+1].String()]; !ok {
					lines[full[:len(prefix)+i+1].String()] = line
				}
			}
			if kv.Value().Kind == unstable.InlineTable {
				inline(full, kv.Value())
			}
		}
	}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			k, line := keyOf(e)
			if e.Kind == unstable.ArrayTable {
				n := arrays[k.String()]
				arrays[k.String()] = n + 1
				k = k.add("[" + strconv.Itoa(n) + "]")
			}
			table = k
			for i := range k {
				if _, ok := lines[k[:i+1].String()]; !ok {
					lines[k[:i+1].String()] = line
				}
			}
		case unstable.KeyValue:
			k, line := keyOf(e)
			full := append(append(path(nil), table...), k...)
			for i := range k {
				if _, ok := lines[full[:len(table)+i+1].String()]; !ok {
					lines[full[:len(table)+i+1].String()] = line
				}
			}
			if e.Value().Kind == unstable.InlineTable {
				inline(full, e.Value())
			}
		}
	}
	return lines
}

// Line returns the line of the key at keys (such as "profiles", "alpha",
// "bazel", "hosts"), or of the nearest enclosing key the file has; 0 when
// none is known. Checks outside this package use it to place their
// problems.
func (f *File) Line(keys ...string) int {
	d := decoder{lines: f.lines}
	return d.line(path(keys))
}
