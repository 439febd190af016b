"""Lab 06 end to end, with parameters other than the defaults, read from its notebook's run
(tests/notebook_runs.py)."""

from __future__ import annotations

import pytest

from labs.lab06_routing import plots
from tests.conftest import assert_held
from tests.figures import assert_figures_read_at_a_glance
from tests.notebook_runs import declare_notebook

FINDINGS = {
    "a_broadcast_needs_its_fanout_exchange_declared_by_the_sender",
    "a_named_queue_is_published_through_the_default_exchange",
    "a_shared_direct_queue_gives_each_message_to_one_worker",
    "broadcast_reaches_every_listening_worker",
    "direct_exchange_routes_by_exact_key",
    "explicit_options_override_task_routes",
    "one_queue_with_several_bindings_gets_every_key",
    "redis_topic_emulation_differs_where_hash_matches_zero_words",
    "two_queue_entries_with_one_name_keep_only_the_last",
    "unroutable_messages_vanish_silently",
}


RUN = declare_notebook("06_routing")  # its notebook's run: parameters in tests/notebook_runs.py


@pytest.fixture(scope="module")
def lab06(lab_runs):
    return lab_runs[RUN]


def test_every_finding_holds(lab06):
    proc, result, _ = lab06
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert_held(result, FINDINGS)


def test_routing_as_measured(lab06):
    _, result, _ = lab06
    f = {x["id"]: x["measured"] for x in result["findings"]}
    # three entries named transient_logs: only the last key ('trace') is bound
    assert f["two_queue_entries_with_one_name_keep_only_the_last"]["transient_logs_got"] == {
        "info": 0, "debug": 0, "trace": 3}
    differ = {tuple(x) for x in f["redis_topic_emulation_differs_where_hash_matches_zero_words"]["differ"]}
    assert differ == {("a.#", "a"), ("#.z", "z")}
    assert f["unroutable_messages_vanish_silently"]["arrived_anywhere"] == 0
    assert f["a_broadcast_needs_its_fanout_exchange_declared_by_the_sender"]["runs"] == 0


def test_figures_read_at_a_glance(lab06):
    _, _, run_dir = lab06
    assert_figures_read_at_a_glance(plots.FIGURES, run_dir)
