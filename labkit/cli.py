"""``celery-lab`` (also ``python -m labkit``): list, run, report, doctor, env, redis, reset,
walkthrough.

Exit codes: 0 every finding held; 1 a finding did not hold (or a lab crashed); 2 setup error
(no Redis binary, broker unreachable, unknown lab, bad param) with one line and no traceback;
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from labkit import catalog
from labkit.errors import SetupError
from labkit.lab import Lab
from labkit.params import Param


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="celery-lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the labs, their parameters and stated wall times")

    run = sub.add_parser("run", help="run a lab (or all) and check its findings")
    run.add_argument("lab", help="a lab number or name (01, 01_hello_world), several (01,03), "
                                 "or 'all'")
    run.add_argument("--quick", action="store_true", help="smaller samples, same findings")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--random-params", type=int, metavar="SEED",
                     help="legal parameters drawn from SEED (for lab authors: every draw must "
                          "hold or be refused)")
    run.add_argument("--broker", help="external Redis URL (default: a private embedded Redis; "
                                      "also CELERY_LAB_BROKER)")
    run.add_argument("--results", type=Path, help="results root (default ./results; also "
                                                  "CELERY_LAB_RESULTS)")

    report = sub.add_parser("report", help="rebuild REPORT.md from the result.json files on disk")
    report.add_argument("results", nargs="?", type=Path, help="results root (default ./results; "
                                                              "also CELERY_LAB_RESULTS)")

    doctor = sub.add_parser("doctor", help="find redis-server, report versions, round-trip a task")
    doctor.add_argument("--broker", help="check this external Redis instead")

    env = sub.add_parser("env", help="print the exports a hand-started worker needs for a lab")
    env.add_argument("lab", nargs="?", help="lab whose per-run settings to include")
    env.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    env.add_argument("--quick", action="store_true")
    env.add_argument("--broker", default="redis://localhost:6379/0")

    redis_cmd = sub.add_parser("redis", help="run a private redis-server in the foreground")
    redis_cmd.add_argument("--port", type=int, default=6379)
    redis_cmd.add_argument("--bind", default="127.0.0.1",
                           help="interface to listen on (default loopback only; another one "
                                "needs --password)")
    redis_cmd.add_argument("--password", help="require this password (AUTH); for sharing one "
                                              "Redis with a room on purpose, see docs/workshop.md")
    redis_cmd.add_argument("--dir", help="keep the data here, so a restart on the same --dir finds "
                                         "what was written (default: a temp dir, gone at exit)")
    redis_cmd.add_argument("--appendonly", choices=("no", "everysec", "always"), default="no",
                           help="AOF persistence: 'no' (default), or appendonly yes with this "
                                "appendfsync (Lab 10)")

    reset = sub.add_parser("reset", help="remove one lab's messages, counters and results from "
                                         "a workshop Redis (stop its workers first)")
    reset.add_argument("lab", help="a lab number or name")
    reset.add_argument("--broker", help="Redis URL (default: $CELERY_BROKER_URL, else "
                                        "redis://localhost:6379/0)")

    exercise = sub.add_parser("exercise", help="'list' the exercises, or start one: copy a "
                                               "lab's starter to exercises/ and say what to do")
    exercise.add_argument("lab", help="'list', or a lab number or name")
    exercise.add_argument("--force", action="store_true",
                          help="start again from the starter, over your copy")

    check = sub.add_parser("check", help="grade your exercise on real workers: a line per check, "
                                         "exit 0 when every check passes")
    check.add_argument("lab", help="a lab number or name")
    check.add_argument("--file", type=Path, help="grade this file instead of exercises/labNN_*.py")
    check.add_argument("--broker", help="an external Redis URL (default: a private embedded one)")
    check.add_argument("--results", type=Path, help="results directory (default: results/)")

    walk = sub.add_parser("walkthrough", help="rehearse a lab's README walkthrough: every step "
                                              "typed, every output checked, each section timed")
    walk.add_argument("lab", help="a lab number or name, several (01,03), or 'all'")
    return parser


INTERRUPTED = 130  # the shell's code for a run stopped by Ctrl-C


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("run", "doctor", "redis", "walkthrough", "check"):
        os.environ.setdefault("MPLBACKEND", "Agg")
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        # a shell starts background jobs with SIGINT ignored, and Python keeps it so: a run
        # must still stop (and reap what it started) when someone sends it Ctrl-C's signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return COMMANDS[args.command](args)
    except SetupError as exc:
        print(f"celery-lab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # a second Ctrl-C while the interpreter shuts down would kill it by the signal (exit
        # -2) after the run's processes were already stopped: the exit code must still say 130
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("celery-lab: interrupted; every process this run started was stopped",
              file=sys.stderr)
        return INTERRUPTED


def cmd_list(args: argparse.Namespace) -> int:
    for lab in catalog.all_labs():
        print(f"{lab.id:<22} {lab.title}")
        if lab.wall_time:
            print(f"{'':<22} wall time: {lab.wall_time}")
        for name, p in lab.params.items():
            quick = f", --quick {p.quick}" if p.quick is not None else ""
            print(f"{'':<22}   {name}={p.default}{quick}{param_range(p)}  {p.help}")
    return 0


def param_range(p: Param) -> str:
    """`` [min 1, max 8]``: the declared range a value must fall in (every legal value is one
    the lab's verdicts hold at); empty where none is declared."""
    bounds = [f"{word} {value:g}" for word, value in (("min", p.min), ("max", p.max)) if value is not None]
    return f" [{', '.join(bounds)}]" if bounds else ""


def cmd_run(args: argparse.Namespace) -> int:
    from labkit import runner
    from labkit.results import read_result, results_root

    if args.lab != "all" and "," not in args.lab:
        if args.random_params is not None and args.param:
            raise SetupError("--random-params draws every parameter; drop --param")
        outcome = runner.run(args.lab, quick=args.quick, params=args.param, broker=args.broker,
                             results=args.results, random_params=args.random_params)
        _print_outcome(outcome)
        return outcome.exit_code

    labs = _labs(args.lab)
    if args.param:
        raise SetupError("--param applies to one lab; run labs one at a time to set params")
    outcomes, failures = [], {}
    for index, lab in enumerate(labs, 1):
        print(f"== [{index}/{len(labs)}] {lab.id}: {lab.title}", file=sys.stderr, flush=True)
        try:
            outcome = runner.run(lab, quick=args.quick, broker=args.broker, results=args.results)
        except SetupError as exc:
            failures[lab.id] = str(exc)
            print(f"celery-lab: error: {lab.id}: {exc}", file=sys.stderr)
            continue
        _print_outcome(outcome)
        outcomes.append(outcome)
    print()
    _report(args.results or results_root(), [read_result(o.run_dir) for o in outcomes], failures)
    if failures:
        return 2
    return 0 if all(o.exit_code == 0 for o in outcomes) else 1


def _labs(ref: str) -> list[Lab]:
    """``all``, one lab, or several separated by commas (``01,03``)."""
    if ref == "all":
        return catalog.all_labs()
    return [catalog.resolve(part) for part in ref.split(",") if part.strip()]


def _print_outcome(outcome) -> None:
    print(f"{outcome.lab.id}: {outcome.held}/{len(outcome.findings)} findings hold "
          f"in {outcome.wall_s:.1f} s -> {outcome.run_dir}")
    for finding in outcome.findings:
        if not finding.holds:
            print(f"  {finding.line()}")
    if outcome.error:
        print(f"  the lab crashed: {outcome.error} (see {outcome.run_dir / 'traceback.txt'})")


def cmd_report(args: argparse.Namespace) -> int:
    from labkit import report
    from labkit.results import results_root

    root = args.results or results_root()
    results = report.newest_results(root)
    if not results:
        raise SetupError(f"no result.json under {root}: run a lab first")
    _report(root, results, {})
    return 0


def _report(root: Path, results: list[dict], failures: dict[str, str]) -> None:
    """REPORT.md under ``root``, and its summary table on the terminal."""
    from labkit import report

    path = report.write_report(root, results, failures)
    print(report.table(report.summary_rows(results, failures)))
    print(f"\nreport: {path}")


def cmd_doctor(args: argparse.Namespace) -> int:
    from labkit.doctor import doctor

    return doctor(args.broker)


PASSWORD_ENV = "REDIS_PASSWORD"


def cmd_env(args: argparse.Namespace) -> int:
    """Exports to ``eval``. A password in ``--broker`` is never printed: the lines refer to
    ``$REDIS_PASSWORD`` instead, which the shell fills in when it evaluates them."""
    from urllib.parse import urlparse

    from app.config import BACKEND_ENV, BROKER_ENV, SETTINGS_ENV
    from labkit.params import resolve as resolve_params

    settings = {}
    if args.lab:
        lab = catalog.resolve(args.lab)
        settings = lab.celery_settings(resolve_params(lab.params, args.param, args.quick))
    url, quote = args.broker, "'"
    password = urlparse(url).password
    if password:
        url, quote = url.replace(f":{password}@", f":${{{PASSWORD_ENV}}}@", 1), '"'
        print(f"# the password is read from ${PASSWORD_ENV} when these lines are evaluated: "
              f"export {PASSWORD_ENV} first")
    print(f"export {BROKER_ENV}={quote}{url}{quote}")
    print(f"export {BACKEND_ENV}={quote}{url}{quote}")
    print(f"export {SETTINGS_ENV}='{json.dumps(settings, sort_keys=True)}'")
    return 0


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def cmd_redis(args: argparse.Namespace) -> int:
    """A foreground Redis for the by-hand workshop, from the same binary the labs use."""
    import subprocess
    import tempfile

    from labkit.broker import find_redis_server

    if args.bind not in LOOPBACK and not args.password:
        raise SetupError(f"--bind {args.bind} offers Redis to the network: add --password "
                         f"(anyone who can write to the broker can run any task)")
    if args.appendonly != "no" and not args.dir:
        raise SetupError(f"--appendonly {args.appendonly} keeps data for a restart: add --dir DIR "
                         f"(the same one when you start it again)")
    binary, source = find_redis_server()
    with tempfile.TemporaryDirectory(prefix="celery-lab-redis-") as workdir:
        data = Path(args.dir).resolve() if args.dir else Path(workdir)
        data.mkdir(parents=True, exist_ok=True)
        # the password goes in a private config file, never on a command line `ps` shows
        config = Path(workdir) / "redis.conf"
        config.touch(mode=0o600)
        aof = ["appendonly no"] if args.appendonly == "no" else [
            "appendonly yes", f"appendfsync {args.appendonly}"]
        lines = [f"port {args.port}", f"bind {args.bind}", 'save ""', *aof,
                 f'dir "{data}"', "databases 64"]     # a db per attendee when shared
        if args.password:
            lines.append(f"requirepass {args.password}")
        config.write_text("\n".join(lines) + "\n")
        auth = ":***@" if args.password else ""
        kept = f"appendonly {args.appendonly}, data in {data}" if args.dir else "nothing kept"
        print(f"redis-server from {source} on redis://{auth}{args.bind}:{args.port}/0 "
              f"({kept}; Ctrl-C stops it)", file=sys.stderr, flush=True)
        proc = subprocess.Popen([binary, str(config)])
        try:
            while proc.poll() is None:
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=5)
    return proc.returncode or 0


def cmd_reset(args: argparse.Namespace) -> int:
    from app.config import BROKER_ENV, DEFAULT_BROKER_URL
    from labkit.broker import connect_client, redact
    from labkit.reset import reset

    number = catalog.resolve(args.lab).number
    url = args.broker or os.environ.get(BROKER_ENV) or DEFAULT_BROKER_URL
    client, _ = connect_client(url)
    with client:
        removed = reset(client, number)
    print(f"{removed.line(number)} on {redact(url)}")
    return 0


def cmd_exercise(args: argparse.Namespace) -> int:
    from labkit import exercise

    if args.lab == "list":
        for ex in exercise.all_exercises():
            print(f"{ex.number}  {ex.lab_id:<20} ~{ex.time_box_min} min  {ex.task}")
        return 0
    ex = exercise.resolve(args.lab)
    target = exercise.start(ex, force=args.force)
    print(f"Exercise {ex.number} ({ex.lab_id}, about {ex.time_box_min} min): {ex.task}\n"
          f"Read first: {ex.read_first}\n"
          f"Your file:  {target.relative_to(Path.cwd()) if target.is_relative_to(Path.cwd()) else target}\n"
          f"Check it:   celery-lab check {ex.number}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from labkit import exercise

    ex = exercise.resolve(args.lab)
    path = args.file or ex.workfile
    outcome = exercise.check(ex, path, broker=args.broker, results=args.results)
    for line in exercise.verdict_lines(ex, outcome):
        print(line)
    passed = outcome.exit_code == 0
    print(f"exercise {ex.number}: {outcome.held}/{len(outcome.findings)} checks pass in "
          f"{outcome.wall_s:.1f} s" + ("" if passed else " (not yet: see the hints above)"))
    return outcome.exit_code


def cmd_walkthrough(args: argparse.Namespace) -> int:
    from labkit.walkthrough.parse import WalkthroughError
    from labkit.walkthrough.play import play
    from labkit.walkthrough.terminals import StepFailed
    from labs import readme

    labs = _labs(args.lab)
    failed = 0
    for lab in labs:
        try:
            rehearsal = play(readme(lab.id), say=lambda line: print(line, file=sys.stderr,
                                                                       flush=True))
        except (StepFailed, WalkthroughError) as exc:
            print(f"{lab.id}: walkthrough departs from its README\n{exc}")
            failed += 1
            continue
        print(f"{lab.id}: walkthrough followed in {rehearsal.wall_s:.0f} s")
        for section, seconds in rehearsal.sections.items():
            print(f"  {seconds:6.1f} s  {section}")
    return 1 if failed else 0


COMMANDS = {"list": cmd_list, "run": cmd_run, "report": cmd_report, "doctor": cmd_doctor,
            "env": cmd_env, "redis": cmd_redis, "reset": cmd_reset, "walkthrough": cmd_walkthrough,
            "exercise": cmd_exercise, "check": cmd_check}


def entry(argv: list[str] | None = None) -> int:
    """The command line's process: ``main``, then, after an interrupt, an exit that nothing can
    turn into another code. The run's processes are stopped by then; a stray SIGINT during the
    interpreter's own shutdown still made it exit -2 (CI saw it twice), so it skips that shutdown."""
    code = main(argv)
    if code == INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED)
    return code


def run_script(lab: Lab) -> int:
    """``python -m labs.<lab>.driver [args]`` is ``celery-lab run <id> [args]``."""
    return entry(["run", lab.id, *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(entry())
