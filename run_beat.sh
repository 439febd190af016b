#!/usr/bin/env bash
# Beat for the by-hand workshop: publishes the schedule in CELERY_LAB_SETTINGS' beat_schedule
# (eval "$(celery-lab env 05)" sets it). Its state file goes to a temp dir, never the repo;
# set CELERY_BEAT_SCHEDULE_FILE to keep one elsewhere.
#
#   ./run_beat.sh            # then watch the worker's terminal
set -euo pipefail
cd "$(dirname "$0")"
if [ -x .venv/bin/celery ]; then PATH="$PWD/.venv/bin:$PATH"; fi
state="${CELERY_BEAT_SCHEDULE_FILE:-$(mktemp -d -t celery-beat-XXXXXX)/celerybeat-schedule}"
exec celery -A app.celery_app beat --loglevel=INFO --schedule "$state" "$@"
