"""Lab 03 end to end, with parameters other than the defaults, read from its notebook's run
(tests/notebook_runs.py)."""

from __future__ import annotations

import json

import pytest

from labs.lab03_bind_context import plots
from tests.conftest import assert_held
from tests.figures import assert_figures_read_at_a_glance
from tests.notebook_runs import declare_notebook

FINDINGS = {
    "argsrepr_is_not_encryption",
    "argsrepr_keeps_the_secret_out_of_events",
    "broker_headers_carry_kwargsrepr",
    "chain_links_are_sent_by_the_parents_pool_process",
    "chain_members_share_the_root_id",
    "debug_log_shows_kwargsrepr",
    "flower_task_api_shows_what_events_carry",
    "flower_worker_api_shows_the_real_kwargs",
    "group_members_share_the_group_id",
    "hostname_is_the_worker_that_ran_it",
    "info_log_shows_no_arguments",
    "inspect_shows_the_real_kwargs",
    "parent_ids_link_the_chain",
    "progress_is_visible_through_the_backend",
    "result_extended_stores_the_real_kwargs",
    "retries_count_up_with_the_same_id",
    "routing_key_matches_the_queue",
    "without_a_backend_the_client_sees_pending",
    "without_result_extended_the_backend_stores_no_arguments",
}


RUN = declare_notebook("03_bind_context")  # its notebook's run: parameters in tests/notebook_runs.py


@pytest.fixture(scope="module")
def lab03(lab_runs):
    return lab_runs[RUN]


def test_every_finding_holds(lab03):
    proc, result, _ = lab03
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert_held(result, FINDINGS)


def test_contexts_are_real_and_the_secret_stays_out_of_events(lab03):
    _, result, run_dir = lab03
    f = {x["id"]: x["measured"] for x in result["findings"]}
    assert f["chain_members_share_the_root_id"]["members"] == 5
    assert f["retries_count_up_with_the_same_id"]["retries"] == [0, 1]
    assert f["hostname_is_the_worker_that_ran_it"]["workers"] == ["w1@celery-lab", "w2@celery-lab"]
    assert f["without_a_backend_the_client_sees_pending"]["states_seen"] == ["PENDING"]
    # the client built without a backend really has none (the run's pinned environment must
    # not lend it one): asking for a state fails
    assert not f["without_a_backend_the_client_sees_pending"]["client_without_backend"].startswith(
        "no error")
    assert f["argsrepr_keeps_the_secret_out_of_events"]["argsrepr"] == {"present": True,
                                                                        "shows_secret": False}
    # the custom secret, tagged per call, is what was searched for
    secrets = json.loads((run_dir / "secrets.json").read_text())
    assert secrets["tokens"]["info"]["plain"] == "s3cr3t-value.info-plain"
    contexts = json.loads((run_dir / "contexts.json").read_text())["contexts"]
    pids = {c["pid"] for c in contexts}
    assert len(pids) >= 2  # several pool processes really ran them
    assert all(c["delivery_tag"] for c in contexts)


def test_figures_read_at_a_glance(lab03):
    _, _, run_dir = lab03
    assert_figures_read_at_a_glance(plots.FIGURES, run_dir)
