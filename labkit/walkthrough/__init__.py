"""A lab's README walkthrough, executed as a workshop attendee would follow it.

The README stays Markdown for people; its fenced blocks carry a terminal tag in the info
string (which renderers do not show), so a machine can follow the same steps:

- ``console term=N``: commands typed at terminal N's shell prompt (``$ ...``), each followed by
  the output it prints. ``running`` in the tag: the block's last command keeps running (Redis,
  a worker, beat, Flower), and the lines after it are the log lines to wait for.
- ``text term=N``: more lines to wait for in terminal N, where something keeps running.
- ``pycon term=N``: a Python session in terminal N (``>>>``), checked with :mod:`doctest`.
- ``keys term=N``: ``Ctrl-C`` (SIGINT) or ``Ctrl-\\`` (SIGQUIT) pressed in terminal N; the
  next step waits for the prompt to come back, unless ``running`` says it does not stop at once.

Expected output uses doctest's ``...`` for ids, pids and timings. :mod:`parse` reads the
blocks, :mod:`terminals` plays the terminals, :mod:`play` runs the steps and times them.
"""
