"""Counts GoogleTest cases of one `bazel test` run; used by tools/run-tests.

usage: test_summary.py BEP_JSON_FILE EXPECTED_TESTS_FILE
prints: PASSED FAILED

The Build Event Protocol file says which test.xml belongs to this run, so
stale files of deleted targets or of targets that no longer build are never
counted. A test that Bazel reports as failed counts at least one failure even
when its test.xml looks clean (e.g. a leak found by LSan at exit, after
GoogleTest wrote the XML), and an expected test without a result (failed to
build, not run) counts one failure.
"""

import json
import sys
import urllib.parse
import xml.etree.ElementTree as ET


def count_cases(xml_path):
    """Returns (cases, failures) of a GoogleTest or Bazel-synthesized XML."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError):
        return 0, 0
    cases = failures = 0
    for case in root.iter("testcase"):
        if case.get("status") == "notrun":  # DISABLED_ tests
            continue
        cases += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failures += 1
    return cases, failures


def main(bep_path, expected_path):
    with open(expected_path) as f:
        expected = {line.strip() for line in f if line.strip()}

    # (label, run, shard) -> (attempt, status, test.xml path); the last
    # attempt of a flaky test is the one that counts.
    results = {}
    try:
        bep = open(bep_path)
    except OSError:
        # Bazel stopped before writing its event file (e.g. a broken
        # WORKSPACE): nothing ran, and that is one failure at least.
        print(f"no build event file {bep_path}: bazel did not run the tests", file=sys.stderr)
        print(0, max(1, len(expected)))
        return
    with bep as f:
        for line in f:
            event = json.loads(line)
            key = event.get("id", {}).get("testResult")
            if key is None or "testResult" not in event:
                continue
            xml = None
            for out in event["testResult"].get("testActionOutput", []):
                if out.get("name") == "test.xml":
                    xml = urllib.parse.unquote(urllib.parse.urlparse(out["uri"]).path)
            slot = (key["label"], key.get("run", 1), key.get("shard", 1))
            attempt = key.get("attempt", 1)
            if slot not in results or results[slot][0] <= attempt:
                results[slot] = (attempt, event["testResult"].get("status"), xml)

    passed = failed = 0
    seen = set()
    for (label, _, _), (_, status, xml) in sorted(results.items()):
        seen.add(label)
        cases, failures = count_cases(xml) if xml else (0, 0)
        if status != "PASSED" and failures == 0:
            failures = 1
            cases = max(cases, 1)
        passed += cases - failures
        failed += failures
    for label in sorted(expected - seen):
        print(f"no test result (failed to build or not run): {label}", file=sys.stderr)
        failed += 1
    print(passed, failed)


if __name__ == "__main__":
    main(*sys.argv[1:])
