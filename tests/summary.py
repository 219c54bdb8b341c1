# -*- coding: utf-8 -*-
"""Print one total over the JUnit reports of `make test`'s suites, so a parallel
run ends with a single line: '<N> passed, <N> failed, <N> skipped'."""

import os
import sys
from xml.etree import ElementTree


def totals(path):
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    counts = dict(tests=0, failures=0, errors=0, skipped=0)
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    return counts


def main(report_dir, suites):
    passed = failed = skipped = 0
    for suite in suites:
        path = os.path.join(report_dir, suite + ".xml")
        if not os.path.exists(path):
            print("%-26s no report (the suite did not run to the end)" % suite)
            failed += 1
            continue
        counts = totals(path)
        bad = counts["failures"] + counts["errors"]
        ok = counts["tests"] - bad - counts["skipped"]
        print("%-26s %4d passed, %d failed, %d skipped" % (suite, ok, bad, counts["skipped"]))
        passed, failed, skipped = passed + ok, failed + bad, skipped + counts["skipped"]
    print("make test: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
