#!/usr/bin/env bash
# vaultdev.sh: sourced by scripts/testenv.sh inside start_vault (which
# provides root, state, pids and wait_http). Builds bin/vaultdev from the
# nested module internal/testservers/vaultdev when it is missing or older
# than its sources, starts it on a free loopback port, waits until it
# answers, and exports VAULT_ADDR and VAULT_TOKEN.
#
# vaultdev is Vault's own core (v1.14.1) in memory, unsealed, with the KV
# and AppRole plugins; every run starts empty. A cold build takes a few
# minutes (large dependency graph); later runs reuse the binary.

vaultdev_src="$root/internal/testservers/vaultdev"
vaultdev_bin="$root/bin/vaultdev"

if [[ ! -x "$vaultdev_bin" ]] ||
	[[ -n "$(find "$vaultdev_src" \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$vaultdev_bin" -print -quit)" ]]; then
	echo "testenv: building bin/vaultdev (Vault test server; the first build takes minutes)" >&2
	mkdir -p "$root/bin"
	if ! (cd "$vaultdev_src" && go build -o "$vaultdev_bin" .); then
		echo "testenv: building bin/vaultdev failed: see the errors above (cd internal/testservers/vaultdev && go build -o ../../../bin/vaultdev .)" >&2
		exit 1
	fi
fi

"$vaultdev_bin" -addr 127.0.0.1:0 -out "$state/vault.json" </dev/null >"$state/vault.log" 2>&1 &
vaultdev_pid=$!
pids+=("$vaultdev_pid")

for _ in $(seq 1 300); do
	[[ -s "$state/vault.json" ]] && break
	if ! kill -0 "$vaultdev_pid" 2>/dev/null; then
		echo "testenv: vaultdev exited before it served; its log:" >&2
		cat "$state/vault.log" >&2
		exit 1
	fi
	sleep 0.1
done
if [[ ! -s "$state/vault.json" ]]; then
	echo "testenv: vaultdev did not announce its address within 30s; its log:" >&2
	cat "$state/vault.log" >&2
	exit 1
fi

VAULT_ADDR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["addr"])' "$state/vault.json")
VAULT_TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$state/vault.json")
export VAULT_ADDR VAULT_TOKEN
wait_http "$VAULT_ADDR/v1/sys/health" vaultdev "$state/vault.log"
echo "testenv: vaultdev (Vault v1.14.1 in memory) on ${VAULT_ADDR#http://}" >&2
unset vaultdev_src vaultdev_bin vaultdev_pid
