"""What the emulator saw, and what it was told to get wrong.

``RequestLog`` counts every device request (not control-channel ones) by
method and path, so a benchmark can compare how many HTTP round trips two
clients need. ``Faults`` makes chosen requests fail the way a busy device
does (mcpd restarting, a dropped connection), so clients can prove their
read retries.
"""
import fnmatch
import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass

FAULT_KINDS = ("mcpd", "reset", "restarting", "status", "delay", "trickle")


class RequestLog:
    def __init__(self, limit=20000):
        self._lock = threading.Lock()
        self.entries = deque(maxlen=limit)
        self.counts = Counter()
        self.total = 0

    def record(self, method, path, query, status, body=None, time=None):
        with self._lock:
            self.total += 1
            self.counts["%s %s" % (method, path)] += 1
            self.entries.append({"method": method, "path": path, "query": query,
                                 "status": status, "body": body, "time": time})

    def snapshot(self):
        with self._lock:
            by_method = Counter()
            for key, n in self.counts.items():
                by_method[key.split(" ", 1)[0]] += n
            return {"total": self.total, "by_method": dict(by_method),
                    "counts": dict(self.counts), "entries": list(self.entries)}

    def clear(self):
        with self._lock:
            self.entries.clear()
            self.counts.clear()
            self.total = 0


@dataclass
class Fault:
    path: str                 # fnmatch pattern over the request path, e.g. "/mgmt/tm/ltm/pool/*/members/stats"
    method: str = None        # None = any method
    count: int = 1            # how many requests to hit; None or 0 = until cleared
    kind: str = "mcpd"        # see FAULT_KINDS
    status: int = 500         # for kind "status"
    body: object = None       # for kind "status": JSON value or text
    seconds: float = 0.0      # for kind "delay" (the wait) and "trickle" (between bytes)

    def matches(self, method, path, decoded):
        if self.method and self.method.upper() != method:
            return False
        return fnmatch.fnmatchcase(path, self.path) or fnmatch.fnmatchcase(decoded, self.path)


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._faults = []

    def add(self, path, method=None, count=1, kind="mcpd", status=500, body=None, seconds=0.0):
        if kind not in FAULT_KINDS:
            raise ValueError("fault kind must be one of %s" % ", ".join(FAULT_KINDS))
        fault = Fault(path, method, count or None, kind, int(status), body, float(seconds))
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method, path, decoded):
        """The first fault matching this request, used up by one."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path, decoded):
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def list(self):
        with self._lock:
            return [asdict(f) for f in self._faults]

    def clear(self):
        with self._lock:
            self._faults.clear()
