"""The steps of a walkthrough, read from the fenced blocks of a lab's README (markdown-it)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt

KINDS = ("console", "text", "pycon", "keys")
KEYS = ("Ctrl-C", "Ctrl-\\")
PROMPT = "$ "


@dataclass(frozen=True)
class Command:
    """One ``$`` line of a console block and the output printed under it."""

    line: str
    want: str


@dataclass(frozen=True)
class Step:
    kind: str
    term: str
    body: str
    lineno: int                     # 1-based line of the opening fence in the README
    section: str                    # the heading the step sits under
    running: bool = False
    timeout: float | None = None
    until: float | None = None      # console: look again (re-run) until it matches, this long
    commands: tuple[Command, ...] = field(default=())

    @property
    def where(self) -> str:
        return f"line {self.lineno} (terminal {self.term})"


class WalkthroughError(ValueError):
    """A README block that a walkthrough cannot follow: a defect of the README."""


_ATTR = re.compile(r"^(\w+)=(\S+)$")


def _tag(info: str) -> tuple[str, dict[str, str], set[str]]:
    words = info.split()
    lang = words[0] if words else ""
    attrs, flags = {}, set()
    for word in words[1:]:
        match = _ATTR.match(word)
        if match:
            attrs[match[1]] = match[2]
        else:
            flags.add(word)
    return lang, attrs, flags


def console_commands(body: str, where: str) -> tuple[Command, ...]:
    """``$ cmd`` lines, each with the lines under it as its expected output."""
    commands: list[Command] = []
    line, want = None, []
    for text in body.splitlines():
        if text.startswith(PROMPT) or text == "$":
            if line is not None:
                commands.append(Command(line, "\n".join(want)))
            line, want = text[len(PROMPT):].strip(), []
        elif line is None:
            if text.strip():
                raise WalkthroughError(f"{where}: output before the first '$ ' command")
        else:
            want.append(text)
    if line is not None:
        commands.append(Command(line, "\n".join(want)))
    if not commands:
        raise WalkthroughError(f"{where}: a console block without a '$ ' command")
    return tuple(commands)


def steps(readme: Path) -> list[Step]:
    """Every tagged block of ``readme``, in order. A fenced block with a shell or Python
    language but no ``term=`` tag is refused: an untested step is a defect."""
    tokens = MarkdownIt("commonmark").parse(readme.read_text())
    out: list[Step] = []
    section = ""
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            section = tokens[index + 1].content
            continue
        if token.type != "fence":
            continue
        lang, attrs, flags = _tag(token.info)
        lineno = token.map[0] + 1
        where = f"{readme.name} line {lineno}"
        if "term" not in attrs:
            if lang in ("console", "pycon", "keys", "bash", "sh", "shell", "python", "py"):
                raise WalkthroughError(f"{where}: a '{lang}' block without term=N is a step no "
                                       f"test executes (tag it term=N; a block that is not a step has "
                                       f"no language)")
            continue
        if lang not in KINDS:
            raise WalkthroughError(f"{where}: unknown block kind {lang!r} (one of {KINDS})")
        unknown = flags - {"running"}
        if unknown:
            raise WalkthroughError(f"{where}: unknown flag(s) {sorted(unknown)}")
        body = token.content.rstrip("\n")
        step = Step(lang, attrs["term"], body, lineno, section, running="running" in flags,
                    timeout=float(attrs["timeout"]) if "timeout" in attrs else None,
                    until=float(attrs["until"]) if "until" in attrs else None)
        if lang == "console":
            step = Step(**{**step.__dict__, "commands": console_commands(body, where)})
        elif step.running and lang != "keys":
            raise WalkthroughError(f"{where}: 'running' tags a console block (it starts "
                                   f"something) or a keys block (it does not stop at once)")
        if step.until is not None and (lang != "console" or step.running):
            raise WalkthroughError(f"{where}: until= re-runs typed commands; it fits a console "
                                   f"block that starts nothing running")
        if lang == "keys" and body.strip() not in KEYS:
            raise WalkthroughError(f"{where}: keys blocks press one of {KEYS}")
        if lang == "text" and not body.strip():
            raise WalkthroughError(f"{where}: an empty text block waits for nothing")
        out.append(step)
    if not out:
        raise WalkthroughError(f"{readme}: no walkthrough steps (no block tagged term=N)")
    return out
