# -*- coding: utf-8 -*-
"""The end of `make test`: one line per suite (its counts from the JUnit report,
its wall time and CPU time), one per check (passed or failed, its times), and one
total, so a parallel run ends with a table in which a slow, a CPU-hungry or a failed
part stands out.  On 2 cores the suites' CPU time summed, halved, is about the least
wall time the run can take.

    python tests/summary.py REPORT_DIR --suites S... --checks C... [--wall SECONDS] [--jobs N]

REPORT_DIR holds <suite>.xml (pytest --junitxml) and <name>.run, which
tests/timed writes for every suite and check: "<seconds> <exit status> <cpu seconds>".
Exit status 1 when anything failed or did not report.
"""

import argparse
import os
import sys
from xml.etree import ElementTree


def totals(path):
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    counts = dict(tests=0, failures=0, errors=0, skipped=0)
    seconds = 0.0
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
        seconds += float(suite.get("time", 0))
    counts["time"] = seconds
    return counts


def timing(report_dir, name):
    """(seconds, exit status, cpu seconds) from <name>.run, or Nones if it never ended."""
    try:
        with open(os.path.join(report_dir, name + ".run")) as handle:
            fields = handle.read().split()
        cpu = float(fields[2]) if len(fields) > 2 else None
        return float(fields[0]), int(fields[1]), cpu
    except (OSError, ValueError, IndexError):
        return None, None, None


def minutes(seconds):
    if seconds is None:
        return "      -"
    return "%3dm %02ds" % divmod(int(round(seconds)), 60)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir")
    parser.add_argument("--suites", nargs="*", default=[])
    parser.add_argument("--checks", nargs="*", default=[])
    parser.add_argument("--wall", type=float, help="wall time of the whole run, in seconds")
    parser.add_argument("--jobs", help="how many ran at once (TEST_JOBS)")
    args = parser.parse_args(argv)

    passed = failed = skipped = 0
    cpu_total = 0.0
    bad = []
    print("%-26s %7s %7s %7s %9s %9s" % ("suite", "passed", "failed", "skipped", "time", "cpu"))
    for suite in args.suites:
        seconds, status, cpu = timing(args.report_dir, suite)
        cpu_total += cpu or 0.0
        path = os.path.join(args.report_dir, suite + ".xml")
        if not os.path.exists(path):
            print("%-26s no report: the suite did not run to the end (exit status %s) %9s %9s"
                  % (suite, status, minutes(seconds), minutes(cpu)))
            failed += 1
            bad.append(suite)
            continue
        counts = totals(path)
        errors = counts["failures"] + counts["errors"]
        ok = counts["tests"] - errors - counts["skipped"]
        # The suite's whole run (tests/timed) when known, else pytest's own count.
        shown = seconds if seconds is not None else counts["time"]
        print("%-26s %7d %7d %7d %9s %9s" % (suite, ok, errors, counts["skipped"], minutes(shown), minutes(cpu)))
        passed, failed, skipped = passed + ok, failed + errors, skipped + counts["skipped"]
        if errors or status:
            bad.append(suite)
    for check in args.checks:
        seconds, status, cpu = timing(args.report_dir, check)
        cpu_total += cpu or 0.0
        result = "did not end" if status is None else "passed" if status == 0 else "FAILED (exit status %d)" % status
        print("%-26s %-25s %9s %9s" % (check, result, minutes(seconds), minutes(cpu)))
        if status != 0:
            bad.append(check)
    line = "make test: %d passed, %d failed, %d skipped" % (passed, failed, skipped)
    if args.wall is not None:
        line += "; %s wall time" % minutes(args.wall).strip()
        if args.jobs:
            line += " (TEST_JOBS=%s)" % args.jobs
        line += ", %s CPU time" % minutes(cpu_total).strip()
    if bad:
        line += "; failed: %s" % ", ".join(bad)
    print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
