package config

import (
	"fmt"
	"strings"
)

// Reference renders the settings table as Markdown: one table per scope,
// each row a setting with its type, default, flag, environment variable
// and meaning. The README's settings reference is this text, so the two
// cannot drift apart.
func Reference() string {
	var b strings.Builder
	section := func(title, intro string, scope Scope, name func(Setting) string, flag func(Setting) string) {
		fmt.Fprintf(&b, "%s\n\n%s\n\n", title, intro)
		if name == nil {
			b.WriteString("| flag | environment | type | default | meaning |\n|---|---|---|---|---|\n")
		} else {
			b.WriteString("| setting | type | default | flag | environment | meaning |\n|---|---|---|---|---|---|\n")
		}
		for _, s := range settingsIn(scope) {
			def := ""
			switch {
			case s.Default != "":
				def = "`" + s.Default + "`"
			case s.Shown != "":
				def = "`" + s.Shown + "`"
			}
			typ := s.Type
			if s.Positive {
				typ += " > 0"
			}
			help := s.Help
			if s.Flat != "" {
				help += fmt.Sprintf(" (formerly `%s` at the top of the profile)", s.Flat)
			}
			if name == nil {
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", flag(s), code(s.Env), typ, def, escapeCell(help))
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", name(s), typ, def, flag(s), code(s.Env), escapeCell(help))
		}
		b.WriteString("\n")
	}
	key := func(s Setting) string { return "`" + s.Path + "`" }
	section("### Profile settings",
		"Written in `[profiles.NAME]`, or in `[defaults]` for every profile. A dotted setting such as `vault.role_id` belongs to a per-kind table: write `role_id` under `[profiles.NAME.vault]` (or, equally, `vault.role_id = ...` under `[profiles.NAME]`). A flag wins over its variable, which wins over the profile, over `[defaults]`, over the default. Durations are Go durations in quotes (`\"90s\"`, `\"5m\"`); `\"0s\"` is a value, not \"unset\" (`min_validity = \"0s\"` serves a pair until it expires), and a `duration > 0` refuses it; secrets are never written in the file: `_env` settings name a variable and `_file` settings a file that holds them.",
		ScopeProfile, key, func(s Setting) string { return code(flagName(s.Flag)) })
	section("### Command settings",
		"Flags and variables only; they choose the file and the profile and how the command runs.",
		ScopeCommand, nil, func(s Setting) string { return code(flagName(s.Flag)) })
	section("### Agent settings",
		"Written in `[agent]`; the flags are `credhelper agent`'s.",
		ScopeAgent, key, func(s Setting) string {
			if s.Flag == "" {
				return ""
			}
			return "`agent --" + s.Flag + "`"
		})
	section("### Plugin settings",
		"Written in `[plugins.NAME]`; a profile uses the plugin as `plugin:NAME:KEY`.",
		ScopePlugin, key, func(s Setting) string { return "" })
	return strings.TrimRight(b.String(), "\n") + "\n"
}

func flagName(f string) string {
	if f == "" {
		return ""
	}
	return "--" + f
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

func escapeCell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
