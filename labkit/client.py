"""The driver's Celery client: built from the very variables its workers get, and made the
default app while it is in use, so ``@shared_task`` objects send through it."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery, _state

from app.celery_app import create_app
from labkit.run_settings import RunSettings, pinned


@contextmanager
def client_app(run_settings: RunSettings) -> Iterator[Celery]:
    """A client configured exactly as a process started with ``run_settings``' environment would be;
    afterwards the previous default app (an outer client, or none) is restored."""
    previous_default, previous_current = _state.default_app, _state._tls.current_app
    env = run_settings.env
    with pinned(env):
        app = create_app(env)
        app.set_default()
        app.set_current()
        try:
            yield app
        finally:
            let_results_go(app)
            app.close()
            _state.set_default_app(previous_default)
            _state._set_current_app(previous_current)


def let_results_go(app: Celery) -> None:
    """Results the backend still tracks (a chord's are held by reference cycles) unsubscribe
    from Redis when collected: now, while Redis runs, rather than at interpreter exit, after the
    run's Redis is gone, with a "Retry limit exceeded" traceback."""
    for mapping in getattr(app.backend, "_pending_results", None) or ():
        mapping.clear()
    gc.collect()
