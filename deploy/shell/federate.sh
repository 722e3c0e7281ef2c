#!/usr/bin/env bash
# One fedpref run federated by hand, on one machine: the server's and the clients' commands in
# a loop, exchanging files. It is the reference for any other driver (the Flower app in
# deploy/flower/ sends the same files over the network) and ends with the adapter the simulated
# `fedpref run` ends with, bit for bit (tests/deploy.rs checks it).
#
#   deploy/shell/federate.sh CONFIG WORK_DIR [--run NAME] [--set KEY=VALUE]...
#
# FEDPREF names the binary (default: fedpref on PATH). WORK_DIR receives config.toml (the run's
# config), shards/ (every client's data), round-R/ (each round's global adapters and updates),
# state-R.safetensors (the server before round R), clients/ (the clients' kept state and
# reference log-probs), rounds.jsonl (one record per round) and global-final.safetensors.
set -euo pipefail

fedpref=${FEDPREF:-fedpref}
if [[ $# -lt 2 ]]; then
    echo "usage: $0 CONFIG WORK_DIR [--run NAME] [--set KEY=VALUE]..." >&2
    exit 2
fi
config=$1 work=$2
shift 2

json_field() { # json_field FIELD: prints a field of the JSON object on stdin
    python3 -c 'import json, sys; v = json.load(sys.stdin)[sys.argv[1]]; print(" ".join(map(str, v)) if isinstance(v, list) else str(v).lower())' "$1"
}

mkdir -p "$work/clients"
"$fedpref" server init --config "$config" "$@" \
    --config-out "$work/config.toml" --state-out "$work/state-0.safetensors" >/dev/null
"$fedpref" data shards --config "$work/config.toml" --out-dir "$work/shards" >/dev/null
: >"$work/rounds.jsonl"

round=0
while :; do
    plan=$("$fedpref" server plan --config "$work/config.toml" \
        --state "$work/state-$round.safetensors" --out-dir "$work/round-$round")
    [[ $(json_field done <<<"$plan") == true ]] && break
    updates=()
    for client in $(json_field sampled <<<"$plan"); do
        kept="$work/clients/$client.state.safetensors"
        state=()
        [[ -f $kept ]] && state=(--state "$kept")
        out="$work/round-$round/update-$client"
        # A client that fails costs that client: the round goes on without its update.
        if "$fedpref" client train --config "$work/config.toml" --client "$client" \
            --global "$work/round-$round/global-$client.safetensors" \
            --client-data "$work/shards/client-$client.shard.jsonl" --round "$round" \
            "${state[@]}" --reference-cache "$work/clients/$client.reference-logprobs.bin" \
            --out "$out" >/dev/null; then
            updates+=("$out")
            [[ -f $out.state.safetensors ]] && mv "$out.state.safetensors" "$kept"
        else
            echo "round $round: client $client failed; going on without it" >&2
        fi
    done
    "$fedpref" server aggregate --config "$work/config.toml" \
        --state "$work/state-$round.safetensors" --updates "${updates[@]}" \
        --out "$work/round-$round/global-next.safetensors" \
        --state-out "$work/state-$((round + 1)).safetensors" >>"$work/rounds.jsonl"
    round=$((round + 1))
done
cp "$work/round-$((round - 1))/global-next.safetensors" "$work/global-final.safetensors"
echo "$round rounds; final global adapter: $work/global-final.safetensors"
