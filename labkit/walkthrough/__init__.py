"""A lab's README walkthrough, executed as a workshop attendee would follow it.

The README stays Markdown for people; its fenced blocks carry a terminal tag in the info
string (which renderers do not show), so a machine can follow the same steps:

- ``console term=N``: commands typed at terminal N's shell prompt (``$ ...``), each followed by
  the output it prints. ``until=S`` in the tag: a state that settles; the block is typed again
  (as a person looks again a moment later) until its output matches, for up to S seconds.
  ``running`` in the tag: the block's last command keeps running (Redis,
  a worker, beat, Flower), and the lines after it are the log lines to wait for.
- ``text term=N``: more lines to wait for in terminal N, where something keeps running.
- ``pycon term=N``: a Python session in terminal N (``>>>``), checked with :mod:`doctest`.
- ``keys term=N``: ``Ctrl-C`` (SIGINT) or ``Ctrl-\\`` (SIGQUIT) pressed in terminal N; the
  next step waits for the prompt to come back, unless ``running`` says it does not stop at once.

Expected output uses doctest's ``...`` for ids, pids and timings. In a ``pycon`` block an output
line cannot *start* with ``...`` (doctest reads it as more code): print a label first. The
rehearsal substitutes only the README's text (ports 6379 and 5555, ``/tmp/``), never a
program's output: write ``celery-lab env NN --broker redis://localhost:6379/0``, not a bare
``celery-lab env NN``, whose default the rehearsal cannot see. :mod:`parse` reads the
blocks, :mod:`terminals` plays the terminals, :mod:`play` runs the steps and times them.
"""
