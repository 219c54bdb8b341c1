"""An F5 BIG-IP iControl REST and SOAP emulator for tests and offline trials.

It is built from F5's documentation and public captures of real devices'
answers; it is not a device. See README.md for what it does and does not
reproduce, and for the ``/_emulator`` control channel.
"""
from .clock import Clock, ManualClock
from .harness import EmulatorError, F5Emulator, F5Pair
from .state import State

__all__ = ["F5Emulator", "F5Pair", "EmulatorError", "State", "Clock", "ManualClock"]
