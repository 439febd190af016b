"""Lab 06: routing keys, exchanges and queues on Redis, measured.

``python -m labs.lab06_routing.driver`` is ``celery-lab run 06``; the notebook calls ``run()``.
"""

from __future__ import annotations

import re
import sys
from functools import partial
from typing import Any

from labkit import runner
from labkit.cli import run_script
from labkit.evidence import Evidence
from labkit.lab import Lab
from labkit.params import Param, Params
from labkit.session import LabSession
from labs.lab06_routing import measure, plots

LOG_QUEUES = ["error_logs", "warning_logs", "transient_logs"]
BOUND_KEYS = ["error", "warning"]  # the keys error_logs and warning_logs are bound with on 'logs'
WORD = re.compile(r"[A-Za-z0-9_-]+")


def walkthrough_queues(transient: list[str]) -> list[dict[str, Any]]:
    """As a popular walkthrough writes it: one Queue entry per key, all named transient_logs."""
    return [{"name": "celery"},
            {"name": "error_logs", "exchange": "logs", "routing_key": "error"},
            {"name": "warning_logs", "exchange": "logs", "routing_key": "warning"},
            *({"name": "transient_logs", "exchange": "logs", "routing_key": key}
              for key in transient)]


def correct_queues(transient: list[str]) -> list[dict[str, Any]]:
    """One queue, several bindings."""
    return [{"name": "celery"},
            {"name": "error_logs", "exchange": "logs", "routing_key": "error"},
            {"name": "warning_logs", "exchange": "logs", "routing_key": "warning"},
            {"name": "transient_logs",
             "bindings": [{"exchange": "logs", "routing_key": key} for key in transient]}]


PARAMS = {
    "per_level": Param(5, "messages published per log level", min=1, max=1000),
    "transient_keys": Param(["info", "debug"], "routing keys meant for transient_logs"),
    "topic_patterns": Param(["kern.*", "*.critical", "kern.#", "#"],
                            "binding patterns on the topic exchange (one queue each)"),
    "topic_keys": Param(["kern.critical", "kern.info", "kern", "kern.disk.full", "user.critical"],
                        "routing keys published to the topic exchange"),
    "broadcasts": Param(4, "messages to the broadcast queue", min=1, max=200),
    "shared": Param(10, "messages to a direct queue two workers share", min=2, max=500),
    "unroutable_key": Param("critical", "a routing key no binding matches"),
    "timeout": Param(30.0, "bound on every wait, seconds", min=10),
}


def settings(p: Params) -> dict[str, Any]:
    """The client's and workers' queues: broadcast and shared ones, and a route for lab06.routed."""
    return {"task_queues": [{"name": "celery"}, {"name": "bcast", "broadcast": True},
                            {"name": "shared"}],
            "task_routes": {"lab06.routed": {"queue": "routed_q"}}}


def validate(p: Params) -> None:
    """Refuse values that collide with the names the lab itself uses, or that no run can
    measure: every count below would otherwise mix two things (a queue receiving more than was
    sent, a negative number dropped)."""
    from labkit.errors import SetupError

    def words(name: str, key: str, wildcards: bool) -> None:
        for word in key.split("."):
            if not (WORD.fullmatch(word) or (wildcards and word in ("*", "#"))):
                kind = "letters, digits, '_', '-'" + (", or a whole '*' / '#'" if wildcards else "")
                raise SetupError(f"bad param {name}={key!r}: every dot-separated word must be "
                                 f"{kind} (kombu's topic regex and AMQP read other words differently)")

    def distinct(name: str, values: list[str]) -> None:
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise SetupError(f"bad param {name}: {twice} given twice; each one is counted on its own")

    keys = p.transient_keys
    for name, key in [*(("transient_keys", k) for k in keys), ("unroutable_key", p.unroutable_key)]:
        if not WORD.fullmatch(key):
            raise SetupError(f"bad param {name}={key!r}: a key on the direct exchange 'logs' must "
                             "be one word of letters, digits, '_', '-'")
    if len(keys) < 2:
        raise SetupError(f"bad param transient_keys={','.join(keys)}: needs at least two keys "
                         "(the lab shows the first one dropped when two entries share a name)")
    distinct("transient_keys", keys)
    if clash := [k for k in keys if k in BOUND_KEYS]:
        raise SetupError(f"bad param transient_keys: {clash} is already bound to "
                         f"{clash[0]}_logs; its messages would be counted twice")
    if p.unroutable_key in [*BOUND_KEYS, *keys]:
        raise SetupError(f"bad param unroutable_key={p.unroutable_key!r}: a binding on 'logs' "
                         f"matches it ({', '.join([*BOUND_KEYS, *keys])} are bound)")
    for name in ("topic_patterns", "topic_keys"):
        if not p[name]:
            raise SetupError(f"bad param {name}: empty; the topic part needs at least one")
        distinct(name, p[name])
    for pattern in p.topic_patterns:
        words("topic_patterns", pattern, wildcards=True)
    for key in p.topic_keys:
        words("topic_keys", key, wildcards=False)


def measure_lab(s: LabSession) -> None:
    p = s.params
    levels = ["error", "warning", *p.transient_keys]
    s.step("the log-level example as the walkthrough writes it (two Queue entries, one name)")
    wrong = measure.log_levels(s, "walkthrough", walkthrough_queues(p.transient_keys), levels,
                               p.per_level)
    measure.forget(s, "logs", LOG_QUEUES)
    s.step("the same with one queue and several bindings")
    right = measure.log_levels(s, "correct", correct_queues(p.transient_keys), levels, p.per_level)
    s.write_json("log_levels.json", [wrong, right])
    check_log_levels(s.evidence, p, wrong, right)

    s.step("topic exchange: patterns against routing keys, Redis against AMQP")
    patterns = {f"topic_{i}": pattern for i, pattern in enumerate(p.topic_patterns)}
    topic = measure.topic(s, patterns, p.topic_keys)
    s.write_json("topic.json", topic)
    check_topic(s.evidence, topic)

    s.step("task_routes against queue= and exchange/routing_key options")
    overrides = measure.overrides(s)
    s.measured(overrides=overrides)
    check_overrides(s.evidence, overrides)
    check_default_exchange(s.evidence, overrides)

    s.step(f"unroutable: routing key {p.unroutable_key!r}")
    lost = measure.unroutable(s, p.unroutable_key, p.per_level)
    s.measured(unroutable=lost)
    check_unroutable(s.evidence, p, lost)

    s.step("fanout: a broadcast queue, a shared queue, a worker that joins late")
    fan = measure.fanout(s, p.broadcasts, p.shared, p.timeout)
    s.write_json("fanout.json", fan)
    check_fanout(s.evidence, fan)


def check_log_levels(ev: Evidence, p: Params, wrong: dict, right: dict) -> None:
    first, last = p.transient_keys[0], p.transient_keys[-1]
    ev.check("two_queue_entries_with_one_name_keep_only_the_last",
             "two Queue entries named transient_logs do not make one queue with two bindings: "
             f"Celery keeps the last entry, so '{first}' is bound nowhere and its messages are "
             "dropped",
             {"dropped": wrong["dropped"], "transient_logs_got": {
                k: wrong["matrix"][k]["transient_logs"] for k in p.transient_keys}},
             f"all {p.per_level} '{first}' dropped; '{last}' delivered",
             len(p.transient_keys) >= 2 and wrong["dropped"][first] == p.per_level
             and wrong["matrix"][last]["transient_logs"] == p.per_level)
    ev.check("one_queue_with_several_bindings_gets_every_key",
             "one Queue with a binding per key receives every one of them; nothing is dropped",
             {"dropped": right["dropped"], "transient_logs_got": {
                k: right["matrix"][k]["transient_logs"] for k in p.transient_keys}},
             f"{p.per_level} of each transient key in transient_logs, 0 dropped",
             all(right["matrix"][k]["transient_logs"] == p.per_level for k in p.transient_keys)
             and not any(right["dropped"].values()))
    exact = all(cfg["matrix"][level][queue] == (p.per_level if queue == f"{level}_logs" else 0)
                for cfg in (wrong, right) for level in ("error", "warning")
                for queue in cfg["queues"])
    ev.check("direct_exchange_routes_by_exact_key",
             "on a direct exchange a message goes to the queues bound with exactly its routing key",
             {cfg["config"]: {lvl: cfg["matrix"][lvl] for lvl in ("error", "warning")}
              for cfg in (wrong, right)},
             "error -> error_logs only, warning -> warning_logs only", exact)


def check_topic(ev: Evidence, topic: dict) -> None:
    differ = [r for r in topic["rows"] if r["redis"] != r["amqp"]]
    # where kombu's regex emulation ('#' -> '.*?' between literal dots) cannot follow AMQP:
    # a '#' that has to match zero words next to a dot
    zero_word = [r for r in topic["rows"] if r["amqp"] and _needs_zero_word_hash(r["pattern"],
                                                                                 r["routing_key"])]
    ev.check("redis_topic_emulation_differs_where_hash_matches_zero_words",
             "kombu's topic emulation on Redis agrees with AMQP except where '#' has to match zero "
             "words (e.g. 'kern.#' against 'kern': AMQP matches, Redis does not)",
             {"pairs": len(topic["rows"]), "differ": [(r["pattern"], r["routing_key"])
                                                      for r in differ]},
             f"exactly the zero-word '#' pairs: {[(r['pattern'], r['routing_key']) for r in zero_word]}",
             {(r["pattern"], r["routing_key"]) for r in differ}
             == {(r["pattern"], r["routing_key"]) for r in zero_word})


def _needs_zero_word_hash(pattern: str, key: str) -> bool:
    """True when every AMQP match of ``pattern`` to ``key`` gives some '#' zero words, and that
    '#' sits next to a dot (so the regex still demands the dot)."""
    words, keys = pattern.split("."), key.split(".")
    if len(words) == 1:
        return False  # a lone '#' becomes '.*?', which also matches zero words

    def matches(p: list[str], k: list[str], zero_hash: bool) -> list[bool]:
        if not p:
            return [zero_hash] if not k else []
        if p[0] == "#":
            out = []
            for i in range(len(k) + 1):
                out += matches(p[1:], k[i:], zero_hash or i == 0)
            return out
        if k and (p[0] == "*" or p[0] == k[0]):
            return matches(p[1:], k[1:], zero_hash)
        return []

    found = matches(words, keys, False)
    return bool(found) and all(found)


def check_overrides(ev: Evidence, overrides: list[dict]) -> None:
    by_call = {o["call"]: o for o in overrides}
    route = by_call["route only"]
    queue = by_call["queue='explicit_q'"]
    explicit = by_call["exchange='logs', routing_key='error'"]
    ev.check("explicit_options_override_task_routes",
             "task_routes applies when the call says nothing; queue= overrides it; so do "
             "exchange= and routing_key=, and then the exchange's bindings decide",
             overrides, "routed_q; explicit_q; error_logs via exchange 'logs' with key 'error'",
             route["landed_in"] == ["routed_q"] and queue["landed_in"] == ["explicit_q"]
             and explicit["landed_in"] == ["error_logs"] and explicit["exchange"] == "logs"
             and explicit["routing_key"] == "error")


def check_default_exchange(ev: Evidence, overrides: list[dict]) -> None:
    named = [o for o in overrides if o["call"] in ("route only", "queue='explicit_q'")]
    ev.check("a_named_queue_is_published_through_the_default_exchange",
             "a call routed to a queue by name (task_routes or queue=) is published to the default "
             "exchange '' with the queue's name as its routing key, as the message's delivery_info "
             "in Redis shows; Redis delivers that to the list of that name",
             {o["call"]: {"exchange": o["exchange"], "routing_key": o["routing_key"],
                          "landed_in": o["landed_in"]} for o in named},
             "exchange '', routing_key = the queue it landed in (routed_q; explicit_q)",
             len(named) == 2 and all(o["exchange"] == "" and o["landed_in"] == [o["routing_key"]]
                                     for o in named))


def check_unroutable(ev: Evidence, p: Params, lost: dict[str, Any]) -> None:
    ev.check("unroutable_messages_vanish_silently",
             "a message whose routing key no binding matches is dropped: it arrives nowhere, and "
             "the client gets no error",
             lost, f"{p.per_level} published, 0 arrived, no client error",
             lost["arrived_anywhere"] == 0 and not lost["client_errors"])


def check_fanout(ev: Evidence, fan: dict) -> None:
    per = fan["per_worker"]
    early_two = [per[h] for h in per if not h.startswith("w3")]
    late = next(v for h, v in per.items() if h.startswith("w3"))
    ev.check("broadcast_reaches_every_listening_worker",
             "a broadcast (fanout) queue delivers every message to each worker listening at that "
             "moment; a worker that joins later gets only what is published after it joined",
             per, f"w1 and w2 each {fan['broadcasts']} early and 1 late; w3 0 early and 1 late",
             all(w["early_broadcasts"] == fan["broadcasts"] and w["late_broadcast"] == 1
                 for w in early_two)
             and late["early_broadcasts"] == 0 and late["late_broadcast"] == 1)
    ev.check("a_broadcast_needs_its_fanout_exchange_declared_by_the_sender",
             "on Redis, a client that sends to a broadcast queue without having declared its "
             "fanout exchange publishes it as direct: no worker gets it, and nothing says so",
             {"sent_without_declare": fan["broadcasts"], "runs": fan["undeclared_runs"]},
             "0 runs", fan["undeclared_runs"] == 0)
    ev.check("a_shared_direct_queue_gives_each_message_to_one_worker",
             "a direct queue consumed by two workers gives each message to exactly one of them",
             {"runs_per_message": sorted(set(fan["shared_runs_per_id"])),
              "split": {h: v["shared"] for h, v in per.items()}},
             f"every one of {fan['shared']} ran once; the two workers' counts add up",
             fan["shared_runs_per_id"] == [1] * fan["shared"]
             and sum(v["shared"] for v in per.values()) == fan["shared"])


LAB = Lab(
    id="06_routing",
    title="Routing keys, exchanges and queues on Redis, measured",
    measure=measure_lab,
    figures=plots.FIGURES,
    params=PARAMS,
    settings=settings,
    validate=validate,
    wall_time="about 12 s, default and --quick alike",
)

# What the notebook calls: the same measurement as ``celery-lab run 06``.
run = partial(runner.run, LAB)

if __name__ == "__main__":
    sys.exit(run_script(LAB))
