package config

import (
	"fmt"
	"reflect"
	"sync"
)

// Source is where a resolved setting's value came from, in rising priority.
type Source uint8

// Sources of settings.
const (
	// SourceUnset: nothing set it and it has no built-in default.
	SourceUnset Source = iota
	// SourceDefault: the built-in default of the settings table.
	SourceDefault
	// SourceDefaults: the file's [defaults].
	SourceDefaults
	// SourceProfile: the profile's own table.
	SourceProfile
	// SourceEnv: a CREDHELPER_* environment variable.
	SourceEnv
	// SourceFlag: a command-line flag.
	SourceFlag
)

// Resolved is one profile with every layer merged: a flag wins over the
// environment, which wins over the profile, over [defaults], over the
// built-in defaults. It remembers where each setting came from, so a
// message can name it as the user wrote it.
type Resolved struct {
	// Name is the profile's name.
	Name string
	// Profile holds the merged settings.
	Profile Profile

	origin []Source // by the setting's place in settingsIn(ScopeProfile)
	// path and lines are the file's, for messages; not the File itself,
	// which an agent with 1,000 profiles would otherwise keep whole.
	path  string
	lines map[string]int
}

// Resolve merges the layers of profile name: flags and env hold what the
// command line and the environment set (zero fields are unset; either may
// be nil). A profile the file does not define is an error unless it is
// "default" or the flags or environment name a backend. A profile with
// problems is resolved as far as it decoded and returned with a
// *ProfileError.
func (f *File) Resolve(name string, flags, env *Profile) (*Resolved, error) {
	if name == "" {
		name = DefaultProfile
	}
	var none Profile
	if flags == nil {
		flags = &none
	}
	if env == nil {
		env = &none
	}
	own, defined := f.Profiles[name]
	var err error
	switch {
	case defined:
		err = f.problemsOf(name, scopeDefaults, profileScope(name))
	case name == DefaultProfile || flags.Backend != "" || env.Backend != "":
		err = f.problemsOf(name, scopeDefaults)
	default:
		return nil, &UnknownProfileError{Name: name, File: f}
	}
	settings := settingsIn(ScopeProfile)
	r := &Resolved{Name: name, origin: make([]Source, len(settings)), path: f.Path, lines: f.lines}
	for i, s := range settings {
		dst := s.field(&r.Profile)
		layers := []struct {
			src Source
			v   reflect.Value
			ok  bool
		}{
			{SourceFlag, s.field(flags), true},
			{SourceEnv, s.field(env), true},
			{SourceProfile, s.field(&own), true},
			{SourceDefaults, s.field(&f.Defaults), s.inherits(&own)},
		}
		for _, l := range layers {
			if l.ok && !l.v.IsZero() {
				dst.Set(l.v)
				r.origin[i] = l.src
				break
			}
		}
		if r.origin[i] == SourceUnset && s.Default != "" {
			if v, perr := parseText(s.kind, s.Default); perr == nil {
				dst.Set(v)
				r.origin[i] = SourceDefault
			}
		}
	}
	return r, err
}

// Source returns where the setting at path ("min_validity",
// "oauth2.client_id") came from.
func (r *Resolved) Source(path string) Source {
	if i, ok := profileSettingIndex()[path]; ok {
		return r.origin[i]
	}
	return SourceUnset
}

// profileSettingIndex maps a profile setting's path to its place in
// settingsIn(ScopeProfile).
var profileSettingIndex = sync.OnceValue(func() map[string]int {
	m := map[string]int{}
	for i, s := range settingsIn(ScopeProfile) {
		m[s.Path] = i
	}
	return m
})

// Describe names the setting at path as the user set it: "--min-validity",
// "$CREDHELPER_MIN_VALIDITY", "min_validity in [profiles.prod]
// (config.toml:4)", "min_validity in [defaults]" or "the default
// min_validity".
func (r *Resolved) Describe(path string) string {
	s, ok := Lookup(ScopeProfile, path)
	if !ok {
		return path
	}
	switch r.Source(path) {
	case SourceFlag:
		return "--" + s.Flag
	case SourceEnv:
		return "$" + s.Env
	case SourceProfile:
		return r.written(s, []string{"profiles", r.Name})
	case SourceDefaults:
		return r.written(s, []string{"defaults"})
	case SourceDefault:
		return "the default " + s.Key()
	}
	return s.Key()
}

// written names s as written in the table under prefix, with its file and
// line when known.
func (r *Resolved) written(s Setting, prefix path) string {
	p := prefix
	if s.Table() != "" {
		p = p.add(s.Table())
	}
	out := fmt.Sprintf("%s in %s", s.Key(), p.table())
	line := r.lines[p.add(s.Key()).String()]
	if line == 0 && s.Flat != "" {
		line = r.lines[prefix.add(s.Flat).String()]
	}
	switch {
	case r.path != "" && line > 0:
		out += fmt.Sprintf(" (%s:%d)", r.path, line)
	case r.path != "":
		out += fmt.Sprintf(" (%s)", r.path)
	}
	return out
}

// HowToSet says how to give the setting at path: "pass --client-id or set
// client_id in [profiles.api.oauth2]".
func (r *Resolved) HowToSet(path string) string {
	s, ok := Lookup(ScopeProfile, path)
	if !ok {
		return "set " + path
	}
	p := path2table(r.Name, s)
	if s.Flag == "" {
		return fmt.Sprintf("set %s in %s", s.Key(), p)
	}
	return fmt.Sprintf("pass --%s or set %s in %s", s.Flag, s.Key(), p)
}

func path2table(profile string, s Setting) string {
	p := path{"profiles", profile}
	if s.Table() != "" {
		p = p.add(s.Table())
	}
	return p.table()
}

// HasTable reports whether any setting of the per-kind table t ("vault")
// is set in p.
func (p Profile) HasTable(t string) bool {
	for _, s := range settingsIn(ScopeProfile) {
		if s.Table() == t && !s.field(&p).IsZero() {
			return true
		}
	}
	return false
}
