"""Time as the emulator sees it.

Token expiry and connection drains both read this clock. Tests either inject
their own (any object with ``time()``) or advance this one through the
control channel, so nothing has to sleep through a drain or a token lifetime.
"""
import time


class Clock:
    def __init__(self):
        self._offset = 0.0

    def time(self):
        return time.time() + self._offset

    def advance(self, seconds):
        self._offset += float(seconds)


class ManualClock:
    """A clock that moves only when told to (for unit tests)."""

    def __init__(self, start=1_700_000_000.0):
        self.now = float(start)

    def time(self):
        return self.now

    def advance(self, seconds):
        self.now += float(seconds)
