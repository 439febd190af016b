"""The terminals of a workshop, played by processes: a shell per terminal (its exports and
cwd carry from one command to the next), what keeps running in it, and its Python session."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shlex
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from queue import Empty, Queue

import pexpect

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\r")
KEY_SIGNALS = {"Ctrl-C": signal.SIGINT, "Ctrl-\\": signal.SIGQUIT}
WINDOW = (50, 200)                      # rows, columns of every terminal
SESSION_MARK = "\x00walkthrough-session\x00"


class StepFailed(AssertionError):
    """What the attendee would have seen differs from what the README says they see."""


def plain(text: str) -> str:
    """Terminal output as a person reads it: no colour codes, no carriage returns."""
    return ANSI.sub("", text)


def line_pattern(want: str) -> re.Pattern[str]:
    """One expected line; ``...`` stands for anything, runs of spaces for any spacing."""
    parts = [r"\s+".join(re.escape(w) for w in piece.split()) for piece in want.strip().split("...")]
    return re.compile(".*".join(parts))


class Running:
    """A long-running command (Redis, a worker, beat, Flower) in its own process group, as a
    terminal's foreground job is; its output goes to a log the walkthrough reads."""

    def __init__(self, line: str, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.line, self.log = line, log
        self._out = log.open("wb")
        # a pseudo-terminal, not a pipe: C programs (redis-cli MONITOR) buffer a pipe's output
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *WINDOW, 0, 0))
        # bash runs a lone simple command in its own process (`VAR=x cmd` included), so the
        # command leads the process group as a terminal's foreground job does
        self.proc = subprocess.Popen(["bash", "-c", line], env=env, cwd=cwd,
                                     stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, preexec_fn=_terminal_signals)
        os.close(slave)
        self._reader = threading.Thread(target=self._copy, args=(master,), daemon=True)
        self._reader.start()
        self.cursor = 0                     # lines before this one were already matched

    def _copy(self, master: int) -> None:
        try:
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:             # EIO: every process holding the terminal is gone
                    break
                if not data:
                    break
                self._out.write(data)
                self._out.flush()
        finally:
            os.close(master)

    def lines(self) -> list[str]:
        return plain(self.log.read_text(errors="replace")).splitlines()

    def wait_for(self, block: str, timeout: float, where: str) -> None:
        """Each line of ``block``, in order, after the last one matched (a person reading
        down); blank lines and lines that are only ``...`` are skipped."""
        deadline = time.monotonic() + timeout
        wants = [w for w in block.splitlines() if w.strip() not in ("", "...")]
        for want in wants:
            pattern = line_pattern(want)
            while True:
                exited = self.proc.poll() is not None   # before the read: no output after it
                lines = self.lines()
                hit = next((i for i in range(self.cursor, len(lines))
                            if pattern.fullmatch(lines[i].strip())), None)
                if hit is not None:
                    self.cursor = hit + 1
                    break
                if time.monotonic() > deadline or exited:
                    tail = "\n".join(lines[self.cursor:][-15:])
                    state = "still running" if self.proc.poll() is None else "exited"
                    raise StepFailed(f"{where}: waited {timeout:g} s for the line\n  {want}\n"
                                     f"in the output of `{self.line}` ({state}); its last lines:\n"
                                     f"{tail}")
                time.sleep(0.1)

    def press(self, key: str) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, KEY_SIGNALS[key])

    def exited(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, grace: float = 10.0) -> None:
        """Ctrl-C, then SIGKILL the whole group (orphaned pool children included)."""
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(self.proc.pid):
                self.proc.poll()
                time.sleep(0.1)
            if not _group_alive(self.proc.pid):
                break
        self.proc.poll()
        self._reader.join(5)
        self._out.close()


def _terminal_signals() -> None:
    """Ctrl-C and Ctrl-\\ act as in a terminal even when the rehearsal itself runs as a
    background job, whose children inherit SIGINT ignored (and no shell can undo that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PythonSession:
    """``python`` typed in a terminal: one interpreter for all of that terminal's ``>>>``
    blocks, checked by doctest inside it (``labkit.walkthrough.pysession``)."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self._err = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "labkit.walkthrough.pysession"],
                                     env=env, cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     start_new_session=True)
        self._replies: Queue[str] = Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith(SESSION_MARK):
                self._replies.put(line[len(SESSION_MARK):])

    def run(self, source: str, name: str, lineno: int, timeout: float) -> None:
        self.proc.stdin.write(json.dumps({"source": source, "name": name, "lineno": lineno})
                              + "\n")
        self.proc.stdin.flush()
        try:
            reply = json.loads(self._replies.get(timeout=timeout))
        except Empty:
            raise StepFailed(f"{name}: the Python session did not finish the block within "
                             f"{timeout:g} s") from None
        if not reply["ok"]:
            raise StepFailed(f"{name}: the Python session printed something else:\n"
                             f"{reply['report']}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._err.close()


# How long a command the README expects to end by itself (a worker after its warm shutdown:
# about 2 s idle here, 4 s after a walkthrough's tasks) may take before the next line is typed;
# CI once saw a worker outlast 30 s after its tasks had succeeded.
EXIT_WAIT_S = 60.0


class Terminal:
    """One terminal window. Typed commands run in a pseudo-terminal, so programs print what a
    person sees (``redis-cli`` formats its replies only for a terminal)."""

    def __init__(self, name: str, env: dict[str, str], cwd: Path, workdir: Path) -> None:
        self.name, self.env, self.cwd, self.workdir = name, dict(env), cwd, workdir
        self.running: Running | None = None
        self.python: PythonSession | None = None
        self._count = 0

    def _file(self, what: str) -> Path:
        self._count += 1
        return self.workdir / f"term{self.name}-{self._count:02d}-{what}"

    def _wait_idle(self, where: str) -> None:
        if self.python is not None:
            raise StepFailed(f"{where}: terminal {self.name} is in a Python session; a shell "
                             f"command cannot be typed there (use another terminal)")
        if self.running is not None:
            if not self.running.exited(EXIT_WAIT_S):
                tail = "\n".join(self.running.lines()[-10:])
                raise StepFailed(f"{where}: terminal {self.name} still runs `{self.running.line}` "
                                 f"{EXIT_WAIT_S:g} s on; nothing typed there can start until it "
                                 f"stops. Its last lines:\n{tail}")
            self.running = None

    def type(self, line: str, timeout: float, where: str) -> str:
        """Run one command at this terminal's prompt; returns what it printed."""
        self._wait_idle(where)
        env_file, cwd_file = self._file("env"), self._file("cwd")
        script = (f"{line}\n__status=$?\nenv -0 > {shlex.quote(str(env_file))}\n"
                  f"pwd > {shlex.quote(str(cwd_file))}\nexit $__status\n")
        child = pexpect.spawn("bash", ["-c", script], env=self.env, cwd=str(self.cwd),
                              encoding="utf-8", codec_errors="replace", dimensions=WINDOW,
                              timeout=timeout)
        try:
            child.expect(pexpect.EOF)
        except pexpect.TIMEOUT:
            child.terminate(force=True)
            raise StepFailed(f"{where}: `{line}` did not finish within {timeout:g} s") from None
        finally:
            child.close()
        output = plain(child.before or "")
        if child.exitstatus != 0:
            raise StepFailed(f"{where}: `{line}` exited with status {child.exitstatus}:\n{output}")
        if env_file.exists():
            pairs = (item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)
            self.env = {k: v for k, v in pairs if k not in ("_", "SHLVL", "PWD", "OLDPWD")}
            self.cwd = Path(cwd_file.read_text().strip())
        return output

    def start(self, line: str, where: str) -> Running:
        self._wait_idle(where)
        self.running = Running(line, self.env, self.cwd, self._file("log"))
        return self.running

    def session(self) -> PythonSession:
        if self.python is None:
            self._wait_idle(f"terminal {self.name}")
            self.python = PythonSession(self.env, self.cwd, self._file("python-stderr"))
        return self.python

    def stop(self) -> None:
        if self.python is not None:
            self.python.stop()
        if self.running is not None:
            self.running.stop()
