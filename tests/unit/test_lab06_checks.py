"""Lab 06's check functions fed where messages really went and, one property at a time, where a
Celery (or kombu) that routed otherwise would have put them. No Redis, no worker: the data is
shaped like measure.py's (and like a real run's log_levels.json, topic.json, fanout.json)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from kombu.transport.virtual.exchange import TopicExchange

from labkit.errors import SetupError
from labkit.evidence import Evidence
from labkit.params import Params, resolve
from labs.lab06_routing import driver
from labs.lab06_routing.measure import amqp_topic_match
from tests.unit.checks import assert_only_fails

Row = dict[str, Any]

QUEUES = ["error_logs", "warning_logs", "transient_logs"]


@pytest.fixture
def p() -> Params:
    return resolve(driver.PARAMS, {}, quick=True)


# --- the log-level example ---------------------------------------------------------------------

# where each level's messages land (by routing key on the direct exchange 'logs')
WALKTHROUGH = {"error": ["error_logs"], "warning": ["warning_logs"], "info": [],
               "debug": ["transient_logs"]}  # only the last transient_logs entry is bound
CORRECT = {"error": ["error_logs"], "warning": ["warning_logs"], "info": ["transient_logs"],
           "debug": ["transient_logs"]}


def log_levels(config: str, landed: dict[str, list[str]], per_level: int = 5) -> Row:
    """measure.log_levels: ``per_level`` messages per level, each copied into the queues
    ``landed[level]`` names."""
    matrix = {level: {q: per_level if q in queues else 0 for q in QUEUES}
              for level, queues in landed.items()}
    return {"config": config, "queues": QUEUES, "published_per_level": per_level,
            "matrix": matrix, "client_errors": [],
            "dropped": {level: per_level - sum(row.values()) for level, row in matrix.items()}}


LAST = "two_queue_entries_with_one_name_keep_only_the_last"
SEVERAL = "one_queue_with_several_bindings_gets_every_key"
DIRECT = "direct_exchange_routes_by_exact_key"


def test_walkthrough_drops_info_and_bindings_get_every_key(ev: Evidence, p: Params) -> None:
    """The holding example, as a real run measured it: 'info' dropped by the walkthrough's
    queues, every key delivered by one queue with two bindings."""
    driver.check_log_levels(ev, p, log_levels("walkthrough", WALKTHROUGH),
                            log_levels("correct", CORRECT))
    assert [f.id for f in ev.findings] == [LAST, SEVERAL, DIRECT] and all(f.holds for f in ev.findings)


def test_a_celery_that_merged_same_named_queue_entries_drops_nothing(ev: Evidence, p: Params) -> None:
    """Had Celery merged the two transient_logs entries into one queue with two bindings, the
    walkthrough would deliver 'info' too."""
    driver.check_log_levels(ev, p, log_levels("walkthrough", CORRECT), log_levels("correct", CORRECT))
    assert_only_fails(ev, LAST)


def test_a_celery_that_kept_the_first_entry_drops_the_last_key(ev: Evidence, p: Params) -> None:
    """First entry wins: 'info' bound, 'debug' dropped: not what the lab claims."""
    first_wins = {**WALKTHROUGH, "info": ["transient_logs"], "debug": []}
    driver.check_log_levels(ev, p, log_levels("walkthrough", first_wins),
                            log_levels("correct", CORRECT))
    assert_only_fails(ev, LAST)


def test_one_queue_that_kept_only_its_last_binding_drops_a_key(ev: Evidence, p: Params) -> None:
    """The 'correct' queue loses its 'info' binding (bindings overwritten, not added)."""
    driver.check_log_levels(ev, p, log_levels("walkthrough", WALKTHROUGH),
                            log_levels("correct", WALKTHROUGH))
    assert_only_fails(ev, SEVERAL)


def test_an_error_message_copied_into_warning_logs_is_not_exact_key_routing(
        ev: Evidence, p: Params) -> None:
    """A message delivered to a queue it was not routed to: 'error' also lands in
    warning_logs (a direct exchange matching loosely, or fanning out)."""
    loose = {**WALKTHROUGH, "error": ["error_logs", "warning_logs"]}
    driver.check_log_levels(ev, p, log_levels("walkthrough", loose), log_levels("correct", CORRECT))
    assert_only_fails(ev, DIRECT)


# --- topic exchange ----------------------------------------------------------------------------

Matcher = Callable[[str, str], bool]


def kombu_redis_match(pattern: str, key: str) -> bool:
    """What kombu's virtual topic exchange (the Redis transport) does: its own regex."""
    return re.match(TopicExchange(None).key_to_pattern(pattern), key) is not None


def glob_star_match(pattern: str, key: str) -> bool:
    """An emulation whose '*' spans dots, like a shell glob ('kern.*' takes 'kern.disk.full')."""
    regex = re.escape(pattern).replace(r"\*", ".+").replace(r"\#", ".*")
    return re.fullmatch(regex, key) is not None


def topic(redis: Matcher = kombu_redis_match, patterns: list[str] | None = None,
          keys: list[str] | None = None) -> Row:
    """measure.topic: for each key and queue, whether Redis delivered it and AMQP would."""
    patterns = patterns or ["kern.*", "*.critical", "kern.#", "#"]
    keys = keys or ["kern.critical", "kern.info", "kern", "kern.disk.full", "user.critical"]
    queues = {f"topic_{i}": pattern for i, pattern in enumerate(patterns)}
    return {"patterns": queues, "keys": keys,
            "rows": [{"routing_key": key, "queue": q, "pattern": pattern,
                      "redis": redis(pattern, key), "amqp": amqp_topic_match(pattern, key)}
                     for key in keys for q, pattern in queues.items()]}


TOPIC = "redis_topic_emulation_differs_where_hash_matches_zero_words"


def test_kombu_topic_emulation_differs_only_on_kern_hash_against_kern(ev: Evidence) -> None:
    """The holding example: of 20 pairs, only ('kern.#', 'kern') differs, as in a real run."""
    driver.check_topic(ev, topic())
    finding = ev.finding(TOPIC)
    assert finding.holds and finding.measured["differ"] == [("kern.#", "kern")]


def test_kombu_topic_emulation_differs_only_on_zero_word_hashes_for_other_patterns(
        ev: Evidence) -> None:
    """The same on test_lab06's parameters: '#' next to a dot on either side."""
    driver.check_topic(ev, topic(patterns=["a.*", "a.#", "#.z", "*.*.z"],
                                 keys=["a.b", "a", "z", "a.z", "b.c.z"]))
    finding = ev.finding(TOPIC)
    assert finding.holds and set(finding.measured["differ"]) == {("a.#", "a"), ("#.z", "z")}


def test_a_redis_emulation_that_follows_amqp_does_not_differ(ev: Evidence) -> None:
    """Had kombu let '#' match zero words, Redis would agree with AMQP everywhere."""
    driver.check_topic(ev, topic(redis=amqp_topic_match))
    finding = ev.finding(TOPIC)
    assert not finding.holds and finding.measured["differ"] == []


def test_a_star_that_spans_dots_differs_beyond_zero_word_hashes(ev: Evidence) -> None:
    """A '*' matching several words delivers 'kern.disk.full' to 'kern.*', which AMQP does not."""
    driver.check_topic(ev, topic(redis=glob_star_match))
    finding = ev.finding(TOPIC)
    assert not finding.holds and ("kern.*", "kern.disk.full") in finding.measured["differ"]


# --- task_routes against per-call options ------------------------------------------------------

def overrides(route: str = "routed_q", queue: str = "explicit_q",
              explicit: tuple[str, str, str] = ("error_logs", "logs", "error")) -> list[Row]:
    """measure.overrides: the list each call's message landed in, and its delivery_info.
    ``explicit``: (queue, exchange, routing_key) of the exchange= / routing_key= call."""
    return [
        {"call": "route only", "landed_in": [route], "exchange": "", "routing_key": route},
        {"call": "queue='explicit_q'", "landed_in": [queue], "exchange": "", "routing_key": queue},
        {"call": "exchange='logs', routing_key='error'", "landed_in": [explicit[0]],
         "exchange": explicit[1], "routing_key": explicit[2]},
    ]


OVERRIDE = "explicit_options_override_task_routes"


def test_task_routes_applies_and_per_call_options_override_it(ev: Evidence) -> None:
    """The holding example, as a real run measured it."""
    driver.check_overrides(ev, overrides())
    assert ev.finding(OVERRIDE).holds


def test_task_routes_winning_over_queue_option_fails(ev: Evidence) -> None:
    """A Celery where task_routes beats queue=: the message lands in routed_q."""
    driver.check_overrides(ev, overrides(queue="routed_q"))
    assert not ev.finding(OVERRIDE).holds


def test_task_routes_winning_over_exchange_and_routing_key_fails(ev: Evidence) -> None:
    """exchange='logs', routing_key='error' ignored in favour of the route."""
    driver.check_overrides(ev, overrides(explicit=("routed_q", "", "routed_q")))
    assert not ev.finding(OVERRIDE).holds


def test_task_routes_ignored_sends_to_the_default_queue(ev: Evidence) -> None:
    """A call that says nothing lands in 'celery': the route was not applied."""
    driver.check_overrides(ev, overrides(route="celery"))
    assert not ev.finding(OVERRIDE).holds


DEFAULT_EXCHANGE = "a_named_queue_is_published_through_the_default_exchange"


def test_a_named_queue_is_published_to_the_default_exchange_with_its_name(ev: Evidence) -> None:
    """The holding example, as a real run read the messages' delivery_info: exchange '' and
    the queue's name as routing key, for the route and for queue=."""
    driver.check_default_exchange(ev, overrides())
    assert ev.finding(DEFAULT_EXCHANGE).holds


def test_a_named_queue_published_through_its_own_exchange_fails(ev: Evidence) -> None:
    """A Celery that published through each queue's own direct exchange (as AMQP routing by
    binding would): exchange 'routed_q' / 'explicit_q', though the messages land in the same lists."""
    rows = [{**o, "exchange": o["routing_key"]} if o["exchange"] == "" else o for o in overrides()]
    driver.check_default_exchange(ev, rows)
    assert not ev.finding(DEFAULT_EXCHANGE).holds


def test_a_routing_key_that_is_not_the_queue_name_fails(ev: Evidence) -> None:
    """Published to '' with the default routing key 'celery' yet found in routed_q: the name
    did not route it."""
    rows = overrides()
    rows[0] = {**rows[0], "routing_key": "celery"}
    driver.check_default_exchange(ev, rows)
    assert not ev.finding(DEFAULT_EXCHANGE).holds


# --- fanout and a shared queue -----------------------------------------------------------------

def worker(early: int, late: int, shared: int) -> Row:
    return {"early_broadcasts": early, "late_broadcast": late, "shared": shared}


def fanout(w1: Row | None = None, w2: Row | None = None, w3: Row | None = None,
           undeclared_runs: int = 0, runs_per_id: list[int] | None = None) -> Row:
    """measure.fanout: 4 broadcasts w1 and w2 heard, 1 after w3 joined; 10 shared tasks split
    5 / 5; the 4 broadcasts sent without declaring the fanout exchange ran nowhere."""
    return {"broadcasts": 4, "shared": 10,
            "per_worker": {"w1@celery-lab": w1 or worker(4, 1, 5), "w2@celery-lab": w2 or worker(4, 1, 5),
                           "w3@celery-lab": w3 or worker(0, 1, 0)},
            "undeclared_runs": undeclared_runs,
            "shared_runs_per_id": [1] * 10 if runs_per_id is None else runs_per_id}


BROADCAST = "broadcast_reaches_every_listening_worker"
DECLARED = "a_broadcast_needs_its_fanout_exchange_declared_by_the_sender"
SHARED = "a_shared_direct_queue_gives_each_message_to_one_worker"


def test_broadcasts_reach_the_listeners_and_a_shared_queue_splits(ev: Evidence) -> None:
    """The holding example, as a real run measured it."""
    driver.check_fanout(ev, fanout())
    assert [f.id for f in ev.findings] == [BROADCAST, DECLARED, SHARED]
    assert all(f.holds for f in ev.findings)


def test_a_broadcast_queue_that_acts_as_a_direct_queue_reaches_one_worker(ev: Evidence) -> None:
    """Each broadcast consumed by one of w1 / w2 (a plain queue): 2 and 2, the late one by w1."""
    driver.check_fanout(ev, fanout(w1=worker(2, 1, 5), w2=worker(2, 0, 5), w3=worker(0, 0, 0)))
    assert_only_fails(ev, BROADCAST)


def test_a_late_worker_that_receives_earlier_broadcasts_fails(ev: Evidence) -> None:
    """Broadcasts kept for late joiners (a durable queue per worker): w3 gets the 4 early ones."""
    driver.check_fanout(ev, fanout(w3=worker(4, 1, 0)))
    assert_only_fails(ev, BROADCAST)


def test_a_client_that_declared_the_fanout_exchange_itself_reaches_the_workers(
        ev: Evidence) -> None:
    """Had the client declared the broadcast queue's exchange from task_queues, the 4 sent
    without declare= would run on both w1 and w2."""
    driver.check_fanout(ev, fanout(undeclared_runs=8))
    assert_only_fails(ev, DECLARED)


def test_a_shared_queue_delivering_each_message_to_both_workers_fails(ev: Evidence) -> None:
    """Every shared message run by w1 and by w2."""
    driver.check_fanout(ev, fanout(w1=worker(4, 1, 10), w2=worker(4, 1, 10), runs_per_id=[2] * 10))
    assert_only_fails(ev, SHARED)


def test_a_shared_message_redelivered_and_run_twice_fails(ev: Evidence) -> None:
    """One message restored to the queue (visibility timeout) and run again by the other worker."""
    driver.check_fanout(ev, fanout(w2=worker(4, 1, 6), runs_per_id=[1] * 9 + [2]))
    assert_only_fails(ev, SHARED)


def test_a_shared_message_that_no_worker_ran_fails(ev: Evidence) -> None:
    """One of the 10 lost: 9 ran once, the counts add up to 9."""
    driver.check_fanout(ev, fanout(w2=worker(4, 1, 4), runs_per_id=[1] * 9))
    assert_only_fails(ev, SHARED)


# --- unroutable messages ------------------------------------------------------------------------

def unroutable(arrived: int = 0, errors: list[str] | None = None, published: int = 5) -> Row:
    """measure.unroutable: messages published with a key no binding matches."""
    return {"routing_key": "fatal", "published": published, "arrived_anywhere": arrived,
            "client_errors": errors or []}


def test_an_unroutable_message_arriving_nowhere_without_an_error_holds(ev: Evidence, p: Params) -> None:
    driver.check_unroutable(ev, p, unroutable())
    assert ev.finding("unroutable_messages_vanish_silently").holds


def test_unroutable_messages_delivered_to_a_default_queue_are_caught(ev: Evidence, p: Params) -> None:
    """A transport that fell back to a default queue (an alternate exchange) delivers them."""
    driver.check_unroutable(ev, p, unroutable(arrived=5))
    assert not ev.finding("unroutable_messages_vanish_silently").holds


def test_a_client_told_its_message_was_unroutable_is_caught(ev: Evidence, p: Params) -> None:
    """AMQP's mandatory flag returns the message: the client hears of it."""
    driver.check_unroutable(ev, p, unroutable(errors=["MessageNacked: unroutable"]))
    assert not ev.finding("unroutable_messages_vanish_silently").holds


# --- parameters that collide with the lab's own names ------------------------------------------

def params(**changed: Any) -> Params:
    return resolve(driver.PARAMS, {k: ",".join(v) if isinstance(v, list) else v
                                   for k, v in changed.items()}, quick=False)


def test_the_default_and_test_lab06_parameters_are_accepted() -> None:
    driver.validate(params())
    driver.validate(params(per_level="3", transient_keys=["info", "debug", "trace"],
                           topic_patterns=["a.*", "a.#", "#.z", "*.*.z"],
                           topic_keys=["a.b", "a", "z", "a.z", "b.c.z"], unroutable_key="fatal"))


def test_empty_topic_lists_from_a_notebook_are_refused() -> None:
    """A notebook can pass a list directly: an empty one would leave the topic check vacuous."""
    with pytest.raises(SetupError, match="bad param topic_keys: empty"):
        driver.validate(resolve(driver.PARAMS, {"topic_keys": []}, quick=False))


@pytest.mark.parametrize(("changed", "named"), [
    ({"unroutable_key": "error"}, "unroutable_key='error'"),  # bound to error_logs: it arrives
    ({"unroutable_key": "debug"}, "unroutable_key='debug'"),  # bound to transient_logs
    ({"transient_keys": ["info", "error"]}, "transient_keys"),  # error_logs would get 2 x per_level
    ({"transient_keys": ["warning", "debug"]}, "transient_keys"),
    ({"transient_keys": ["info", "info"]}, "transient_keys"),  # the first key is the last key
    ({"transient_keys": ["info"]}, "transient_keys"),  # nothing to drop
    ({"transient_keys": ["in fo", "debug"]}, "transient_keys"),
    ({"unroutable_key": ""}, "unroutable_key"),
    ({"topic_keys": ["kern", "kern.disk", "kern"]}, "topic_keys"),
    ({"topic_patterns": ["kern.*", "kern.*"]}, "topic_patterns"),
    ({"topic_patterns": ["ke*n.#"]}, "topic_patterns"),  # a '*' inside a word: a regex to kombu
    ({"topic_keys": ["kern..disk"]}, "topic_keys"),  # an empty word
    ({"topic_keys": ["kern.*"]}, "topic_keys"),
])
def test_colliding_or_unmeasurable_parameters_are_refused_in_one_line(changed: dict, named: str) -> None:
    with pytest.raises(SetupError) as refused:
        driver.validate(params(**changed))
    message = str(refused.value)
    assert message.startswith("bad param ") and named in message and "\n" not in message
