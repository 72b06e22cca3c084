#!/usr/bin/env bash
# Mutation testing (cosmic-ray) of the modules that carry Switchboard's reliability promises.
# Not part of `make test`: every mutant reruns the tests that cover its module, which takes from
# minutes (presence) to hours (the Redis layer). Run one module at a time:
#
#     make mutants                      # every module below, one after the other
#     make mutants MUTANTS=presence     # one of: presence fanout delivery worker redis-layer
#
# cosmic-ray changes the module's source in place for each mutant, so the run happens in a copy
# of the committed tree (var/mutants/tree), never in the working tree. Each module's session is
# kept (var/mutants/<name>.sqlite): an interrupted run goes on where it stopped when started
# again. The report of each module, surviving mutants first, is var/mutants/<name>.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${BIN:-$ROOT/.venv/bin}"
PYTHON="$BIN/python"
OUT="$ROOT/var/mutants"
TREE="$OUT/tree"
# Seconds one mutant's test run may take before it counts as killed (a hang is a detected change).
TIMEOUT="${MUTANT_TIMEOUT:-300}"

# module name -> "<source file>|<the tests that cover it>"
declare -A MODULES=(
  [presence]="chat/presence.py|chat/tests/test_presence.py chat/tests/test_consumers.py -k 'presence or heartbeat or present'"
  [fanout]="notifications/services.py|notifications/tests/test_services.py notifications/tests/test_consumers.py notifications/tests/test_poll.py tests/test_unstorable_text.py -k 'not socket'"
  [delivery]="chat/delivery.py|chat/tests/test_delivery.py chat/tests/test_consumers.py::test_heartbeat_keeps_a_quiet_member_present_in_redis"
  [worker]="realtime/worker.py|realtime/tests/test_worker.py"
  [redis-layer]="realtime/layers/redis.py|realtime/tests/test_layers_redis.py realtime/tests/test_layers_conformance.py"
)
ORDER=(presence fanout delivery worker redis-layer)

names=("$@")
if [ ${#names[@]} -eq 0 ]; then names=("${ORDER[@]}"); fi
for name in "${names[@]}"; do
  if [ -z "${MODULES[$name]+set}" ]; then
    echo "unknown module '$name'; expected one of: ${ORDER[*]}" >&2
    exit 2
  fi
done

mkdir -p "$OUT"
if [ ! -d "$TREE" ] || [ "$(cat "$OUT/tree.commit" 2>/dev/null)" != "$(git -C "$ROOT" rev-parse HEAD)" ]; then
  rm -rf "$TREE" "$OUT"/*.sqlite
  mkdir -p "$TREE"
  git -C "$ROOT" archive HEAD | tar -x -C "$TREE"
  git -C "$ROOT" rev-parse HEAD > "$OUT/tree.commit"
fi

for name in "${names[@]}"; do
  IFS='|' read -r module tests <<< "${MODULES[$name]}"
  config="$OUT/$name.toml"
  cat > "$config" <<TOML
[cosmic-ray]
module-path = "$module"
timeout = $TIMEOUT
excluded-modules = []
test-command = "$PYTHON -m pytest -x -q $tests"

[cosmic-ray.distributor]
name = "local"
TOML
  session="$OUT/$name.sqlite"
  echo "== $name: mutating $module, tests: $tests"
  (
    cd "$TREE"
    if [ ! -f "$session" ]; then
      # The unmutated module must pass its tests, or every mutant would count as killed.
      "$BIN/cosmic-ray" --verbosity ERROR baseline "$config"
      "$BIN/cosmic-ray" init "$config" "$session"
    fi
    "$BIN/cosmic-ray" exec "$config" "$session"
  )
  "$BIN/cr-rate" "$session" > "$OUT/$name.survival" || true
  "$BIN/cr-report" --show-diff --surviving-only "$session" > "$OUT/$name.txt" || true
  echo "== $name: survival rate $(cat "$OUT/$name.survival")%; surviving mutants in $OUT/$name.txt"
done
