"""The Python session of one walkthrough terminal: reads ``>>>`` blocks (one JSON line each)
and runs them with doctest in one namespace, as a person's interpreter keeps its names."""

from __future__ import annotations

import doctest
import io
import json
import sys

from labkit.walkthrough.terminals import SESSION_MARK

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.FAIL_FAST


def main() -> None:
    namespace: dict = {"__name__": "__main__"}
    reply_to = sys.stdout
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=FLAGS)
    for raw in sys.stdin:
        request = json.loads(raw)
        test = parser.get_doctest(request["source"], namespace, request["name"],
                                  request["name"], request["lineno"])
        report = io.StringIO()
        result = runner.run(test, out=report.write, clear_globs=False)
        namespace = test.globs          # DocTest works on a copy: keep what the block defined
        reply_to.write(SESSION_MARK + json.dumps({"ok": result.failed == 0,
                                                  "report": report.getvalue()}) + "\n")
        reply_to.flush()


if __name__ == "__main__":
    main()
