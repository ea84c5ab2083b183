#!/usr/bin/env bash
# The Action's step (action.yml): install the suite from the Action's own checkout (the repository
# at the tag the workflow names) into a venv, run `workerprobe test` (and `workerprobe load` when a
# profile is asked for), and write the step's outputs. The summary reaches the job's page through
# $GITHUB_STEP_SUMMARY, which workerprobe appends to itself. Inputs arrive as WP_* variables.
#
# Outside GitHub (a test, another CI): set GITHUB_ACTION_PATH to a checkout of workerprobe and
# GITHUB_OUTPUT / RUNNER_TEMP as you like; everything else has a default.
set -uo pipefail

here="${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH names the checkout of workerprobe}"
reports="${WP_REPORT_DIR:-workerprobe-reports}"
venv="${WP_VENV:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/workerprobe-venv}"
output="${GITHUB_OUTPUT:-/dev/null}"
python="${WP_PYTHON:-python3}"

say() { echo "workerprobe action: $*"; }

if [ ! -x "$venv/bin/workerprobe" ]; then
  say "installing the suite from $here into $venv"
  "$python" -m venv "$venv" || { say "could not create a venv with $python"; echo "exit-code=2" >>"$output"; exit 2; }
  "$venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null
  if ! "$venv/bin/python" -m pip install --quiet "$here[suite]"; then
    say "could not install workerprobe from $here"
    echo "exit-code=2" >>"$output"
    exit 2
  fi
fi
"$venv/bin/workerprobe" --version

test_args=(test --report "$reports" --max-neurons "${WP_MAX_NEURONS:-300}" --depth "${WP_DEPTH:-default}")
if [ -n "${WP_URL:-}" ]; then
  test_args+=("$WP_URL")
  if [ -z "${WP_KEY:-}" ]; then
    say "the input url is set but key is not: the suite needs both (pass a secret as key)"
    echo "verdict=UNVERIFIED" >>"$output"
    echo "exit-code=2" >>"$output"
    exit 2
  fi
  export API_KEY="$WP_KEY"  # not on the command line: a process list would show it
fi
"$venv/bin/workerprobe" "${test_args[@]}"
code=$?

latest="$reports/latest"
if [ -f "$latest/summary.json" ]; then
  verdict=$("$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["verdict"])' "$latest/summary.json")
  run_dir=$(cd "$latest" && pwd -P)
else
  verdict=UNVERIFIED
  run_dir=""
fi

if [ -n "${WP_LOAD_PROFILE:-}" ] && [ "$code" -ne 2 ]; then
  load_args=(load --report "$reports" --profile "$WP_LOAD_PROFILE" --users "${WP_LOAD_USERS:-4}"
    --seconds "${WP_LOAD_SECONDS:-60}" --p95-ttft-ms "${WP_P95_TTFT_MS:-0}"
    --max-error-rate "${WP_MAX_ERROR_RATE:-0.01}" --max-neurons "${WP_MAX_NEURONS:-300}")
  [ -n "${WP_URL:-}" ] && load_args+=("$WP_URL")
  "$venv/bin/workerprobe" "${load_args[@]}"
  loaded=$?
  [ "$loaded" -gt "$code" ] && code=$loaded
fi

{
  echo "verdict=$verdict"
  echo "exit-code=$code"
  echo "report-dir=$run_dir"
} >>"$output"
say "verdict $verdict, exit $code, reports in ${run_dir:-$reports}"
exit "$code"
