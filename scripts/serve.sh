#!/usr/bin/env bash
# `make serve`: the scaled topology on one machine. Migrates, then runs together
#   - gunicorn with WEB_WORKERS (3) workers on 127.0.0.1:PORT (5000),
#   - one RQ worker (`flask --app wsgi jobs work`),
#   - the sweeper (`flask --app wsgi requests process-due`) once a minute,
# and stops all of them on Ctrl-C (or when any one of them stops).
# Needs DATABASE_URL (PostgreSQL) and REDIS_URL; everything else is read as the app reads it.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
PORT=${PORT:-5000}
WEB_WORKERS=${WEB_WORKERS:-3}
SWEEP_SECONDS=${SWEEP_SECONDS:-60}
export BASE_URL=${BASE_URL:-http://127.0.0.1:$PORT}

missing=()
[[ -n "${DATABASE_URL:-}" ]] || missing+=("DATABASE_URL (e.g. postgresql://user@127.0.0.1/privacy)")
[[ -n "${REDIS_URL:-}" ]] || missing+=("REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
if ((${#missing[@]})); then
    echo "make serve needs a database server and Redis; set:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    echo "(make run serves a single process with SQLite and needs neither)" >&2
    exit 2
fi

"$BIN/flask" --app wsgi db upgrade

# Each background job in its own process group: the sweeper's `sleep` goes with its loop,
# and gunicorn and the RQ worker get exactly one TERM (a graceful stop) from us.
set -m  # (job notices off again below)
pids=()
stop_all() {
    trap - INT TERM
    for pid in "${pids[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    wait || true
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

"$BIN/gunicorn" --workers "$WEB_WORKERS" --bind "127.0.0.1:$PORT" wsgi:app &
pids+=($!)
"$BIN/flask" --app wsgi jobs work &
pids+=($!)
(
    while true; do
        sleep "$SWEEP_SECONDS"  # first after a pause: start-up is busy enough without it
        "$BIN/flask" --app wsgi requests process-due >/dev/null || echo "process-due failed" >&2
    done
) &
pids+=($!)
set +m
echo "serving on $BASE_URL (gunicorn $WEB_WORKERS workers, 1 RQ worker, sweeper every ${SWEEP_SECONDS}s); Ctrl-C stops" >&2

status=0
wait -n || status=$?
echo "a process stopped (status $status); stopping the others" >&2
stop_all
exit "$status"
