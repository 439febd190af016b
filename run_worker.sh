#!/usr/bin/env bash
# A worker for the by-hand workshop: the same app (app.celery_app) and settings the labs use.
#
#   export CELERY_BROKER_URL=redis://localhost:6379/0   # or: eval "$(celery-lab env 02)"
#   ./run_worker.sh                      # prefork, one process per core, events on
#   ./run_worker.sh -c 1 -n w2@%h -Q celery,other
#
# Any extra arguments go to `celery worker`. Reads CELERY_BROKER_URL, CELERY_RESULT_BACKEND
# and CELERY_LAB_SETTINGS (see app/config.py).
set -euo pipefail
cd "$(dirname "$0")"
if [ -x .venv/bin/celery ]; then PATH="$PWD/.venv/bin:$PATH"; fi
exec celery -A app.celery_app worker --loglevel=INFO -E --without-mingle --without-gossip "$@"
