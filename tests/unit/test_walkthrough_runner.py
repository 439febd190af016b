"""The walkthrough runner: how README blocks become steps, and that a departure from the
README's expected output fails (each check fed a counter-example). No Redis needed."""

from __future__ import annotations

import signal
import textwrap

import pytest

from labkit.walkthrough.parse import WalkthroughError, console_commands, steps
from labkit.walkthrough.play import check_output, play
from labkit.walkthrough.terminals import StepFailed, line_pattern, plain
from labs import lab_id, packages
from labs import readme as readme_of


def _readme(tmp_path, text: str):
    path = tmp_path / "README.md"
    path.write_text(textwrap.dedent(text))
    return path


def test_console_blocks_split_into_commands_and_their_output():
    commands = console_commands("$ export A=1\n$ echo $A\n1\n$ true", "here")
    assert [(c.line, c.want) for c in commands] == [("export A=1", ""), ("echo $A", "1"),
                                                   ("true", "")]
    with pytest.raises(WalkthroughError):
        console_commands("output before any command\n$ true", "here")


@pytest.mark.parametrize("block", ["```bash\nls\n```", "```python\n1\n```",
                                   "```console\n$ ls\n```", "```pycon term=1 running\n>>> 1\n```",
                                   "```keys term=1\nCtrl-Z\n```", "```ruby term=1\nx\n```",
                                   "```text term=1\n\n```"])
def test_an_untested_or_malformed_step_is_refused(tmp_path, block):
    with pytest.raises(WalkthroughError):
        steps(_readme(tmp_path, f"# t\n\n```console term=1\n$ true\n```\n\n{block}\n"))


def test_plain_blocks_are_not_steps(tmp_path):
    found = steps(_readme(tmp_path, "# t\n\n```\na diagram\n```\n\n```console term=1\n$ true\n```\n"))
    assert [(s.kind, s.lineno, s.section) for s in found] == [("console", 7, "t")]


def test_every_lab_readme_is_a_walkthrough_with_its_time():
    for package in packages():
        readme = readme_of(lab_id(package))
        found = steps(readme)
        assert {s.kind for s in found} >= {"console", "pycon"}, package
        assert "**Time:**" in readme.read_text(), f"{package}: no stated walkthrough time"


def test_output_matching_uses_ellipsis_and_rejects_a_departure():
    assert check_output("(integer) ...", "(integer) 3\r\n")
    assert check_output("", "")
    assert not check_output("(integer) 3", "(integer) 2")
    assert not check_output("", "something printed")
    received = line_pattern("... Task lab04.work[...] received")
    assert received.fullmatch("[12:00: INFO] Task lab04.work[x] received")
    assert not received.fullmatch("[12:00: INFO] Task lab04.work[x] succeeded")
    assert plain("\x1b[1;32mOK\x1b[0m\r") == "OK"


def test_a_walkthrough_follows_shells_running_processes_python_and_keys(tmp_path):
    readme = _readme(tmp_path, """\
        # t

        ```console term=1 running
        $ WORD=ready python -c "import os, time; print(os.environ['WORD'], flush=True); time.sleep(60)"
        ready
        ```

        ```console term=2
        $ export N=41
        $ echo $((N + 1)) /tmp/x
        42 /tmp/x
        $ python
        ```

        ```pycon term=2
        >>> import os
        >>> int(os.environ["N"]) + 1
        42
        ```

        ```keys term=1
        Ctrl-C
        ```
        """)
    rehearsal = play(readme, workdir=tmp_path / "work")
    assert list(rehearsal.sections) == ["t"]


@pytest.mark.parametrize("bad", [
    "```console term=1\n$ echo 41\n42\n```",
    "```console term=1\n$ false\n```",
    "```console term=1 running timeout=1\n$ sleep 30\nnever printed\n```",
    "```console term=1\n$ python\n```\n\n```pycon term=1\n>>> 1 + 1\n3\n```",
    "```console term=1\n$ python\n```\n\n```pycon term=1\n>>> name_from_nowhere\n```",
    "```console term=1\n$ python\n```\n\n```console term=1\n$ echo typed into python\n"
    "typed into python\n```",
    "```console term=1 running\n$ python -c 'print(1, flush=True)'\n1\n```\n\n"
    "```text term=1 timeout=1\nnot in the log\n```",
])
def test_a_departure_from_the_readme_fails_the_walkthrough(tmp_path, bad):
    with pytest.raises(StepFailed):
        play(_readme(tmp_path, f"# t\n\n{bad}\n"), workdir=tmp_path / "work")


SETTLING = """\
```console term=1 running
$ python -c "import time; print('up', flush=True); time.sleep(1); open('/tmp/f', 'w'); time.sleep(60)"
up
```

```console term=2{until}
$ test -e /tmp/f && echo x
x
```

```keys term=1
Ctrl-C
```
"""


def test_until_looks_again_while_a_state_settles_and_only_then(tmp_path):
    play(_readme(tmp_path, "# t\n\n" + SETTLING.format(until=" until=15")), workdir=tmp_path / "a")
    with pytest.raises(StepFailed):
        play(_readme(tmp_path, "# t\n\n" + SETTLING.format(until="")), workdir=tmp_path / "b")


def test_ctrl_c_stops_a_program_even_when_the_rehearsal_runs_in_the_background(tmp_path):
    """A shell starts background jobs with SIGINT ignored, and children inherit that: a
    terminal's Ctrl-C must still reach what the walkthrough started."""
    readme = _readme(tmp_path, """\
        # t

        ```console term=1 running
        $ python -c "import time; print('up', flush=True); time.sleep(60)"
        up
        ```

        ```keys term=1 timeout=10
        Ctrl-C
        ```
        """)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        play(readme, workdir=tmp_path / "work")
    finally:
        signal.signal(signal.SIGINT, previous)
