# -*- coding: utf-8 -*-
"""The in-rotation count of a container, sampled while racing runs of the core
try to take members out (tests/integration/{haproxy,f5}/test_*_concurrency.py).

A race is judged by what the samples show for certain: a stretch of samples
below the floor lasted at least from the end of its first sample to the start
of its last.  The gaps around it (a sample is a socket exchange or two, and
the sampler is a thread of a busy test process) are reported, not counted.
The bound a dip is held to is the repair: every run that crossed the floor
re-reads and undoes its own write before it returns, so a dip lasts no longer
than one read and one write per racer on a quiet machine, and never longer
than the longest run."""

import threading
import time

SAMPLE_EVERY = 0.010


class Sampler(object):
    """Calls ``count()`` every SAMPLE_EVERY seconds until stopped."""

    def __init__(self, count):
        self.count = count
        self.windows = []          # (sample began, sample ended, count)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def samples(self):
        """(when the sample ended, count), in order."""
        return [(ended, count) for _began, ended, count in self.windows]

    def _run(self):
        while not self.stopping.is_set():
            began = time.monotonic()
            try:
                count = self.count()
            except Exception:      # noqa: BLE001 - a sample lost to a busy socket is not a finding
                pass
            else:
                self.windows.append((began, time.monotonic(), count))
            self.stopping.wait(SAMPLE_EVERY)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(5)

    def longest_below(self, floor):
        """The longest stretch below ``floor`` with the gaps around it: from the
        sample before it to the sample after it (an upper estimate)."""
        longest, since, previous = 0.0, None, None
        for began, ended, count in self.windows:
            if count < floor and since is None:
                since = previous if previous is not None else began
            elif count >= floor and since is not None:
                longest = max(longest, ended - since)
                since = None
            previous = ended
        if since is not None:
            longest = max(longest, self.windows[-1][1] - since)
        return longest

    def certainly_below(self, floor):
        """The longest time the count was below ``floor`` for certain: from the
        end of the first sample of a stretch to the start of its last."""
        longest, first_end, last_start = 0.0, None, None
        for began, ended, count in self.windows + [(None, None, floor)]:
            if count < floor:
                if first_end is None:
                    first_end = ended
                last_start = began
            elif first_end is not None:
                longest = max(longest, last_start - first_end)
                first_end = None
        return longest

    def resolution(self):
        """The longest gap between the starts of two samples."""
        starts = [began for began, _ended, _count in self.windows]
        return max([b - a for a, b in zip(starts, starts[1:])] + [SAMPLE_EVERY])


def repair_bound(racers, per_exchange, outcome):
    """How long a dip may last: one read and one write per racer at this
    moment's exchange time, or the longest run (each run repairs before it
    returns), whichever is longer; plus the sampler's own period."""
    longest_run = max(seconds for _kind, seconds in outcome.values())
    return max(len(racers) * 2 * per_exchange, longest_run) + 3 * SAMPLE_EVERY + 0.05
