#!/usr/bin/env bash
# testenv.sh CMD [ARGS...]
#
# Starts every server the tests need on free loopback ports, exports how to
# reach them, runs CMD, and stops the servers whatever CMD does:
#   moto_server      -> AWS_ENDPOINT_URL_SECRETS_MANAGER, dummy AWS credentials
#   Vault dev server -> VAULT_ADDR, VAULT_TOKEN (see start_vault)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=$(mktemp -d "${TMPDIR:-/tmp}/credhelper-testenv.XXXXXX")
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$state"
}
trap cleanup EXIT INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # URL NAME LOG
	for _ in $(seq 1 200); do
		if curl -s -o /dev/null "$1"; then return 0; fi
		sleep 0.1
	done
	echo "testenv: $2 did not start; its log:" >&2
	cat "$3" >&2
	exit 1
}

start_moto() {
	if ! command -v moto_server >/dev/null; then
		echo "testenv: moto_server not found: install it with: pip install 'moto[server]==5.2.1'" >&2
		exit 1
	fi
	local port
	port=$(free_port)
	moto_server -H 127.0.0.1 -p "$port" >"$state/moto.log" 2>&1 &
	pids+=($!)
	wait_http "http://127.0.0.1:$port/moto-api/" moto_server "$state/moto.log"
	export AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:$port"
	export CREDHELPER_TEST_MOTO="http://127.0.0.1:$port"
	export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
	export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
	echo "testenv: moto_server on 127.0.0.1:$port" >&2
}

start_vault() {
	# Filled in by the Vault backend: build internal/testservers/vaultdev and
	# start it on a free loopback port, exporting VAULT_ADDR and VAULT_TOKEN.
	if [[ -x "$root/scripts/vaultdev.sh" ]]; then
		# shellcheck source=/dev/null
		source "$root/scripts/vaultdev.sh"
	fi
}

start_moto
start_vault
"$@"
