#!/usr/bin/env bash
# cross vets the module (which type-checks every package) and links the
# commands for every platform credhelper's users have. Outside Linux the
# test files are left out through a build overlay: the test suites drive
# Linux processes (signals, uids, /proc, inotify) and run on Linux, while
# the library and the commands must build and vet everywhere.
set -euo pipefail
GO=${GO:-go}
targets=${CROSS_TARGETS:-"linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64"}
overlay=$(mktemp)
trap 'rm -f "$overlay"' EXIT
# Every test file of the module, replaced by nothing.
"$GO" list -f '{{$d := .Dir}}{{range .TestGoFiles}}{{$d}}/{{.}}
{{end}}{{range .XTestGoFiles}}{{$d}}/{{.}}
{{end}}' ./... | awk 'NF { printf "%s\"%s\": \"\"", (n++ ? ",\n" : ""), $0 } BEGIN { print "{\"Replace\": {" } END { print "}}" }' > "$overlay"
for t in $targets; do
	os=${t%/*} arch=${t#*/}
	echo "cross: $t"
	flags=()
	[ "$os" != linux ] && flags=(-overlay "$overlay")
	GOOS=$os GOARCH=$arch "$GO" vet "${flags[@]}" ./...
	GOOS=$os GOARCH=$arch "$GO" build ./cmd/...
done
