#!/usr/bin/env python3
"""Run one file of the Eclipse Paho MQTT interoperability suite against a
broker, with a time limit per test and one result line per test.

    paho_suite_run.py SUITE_DIR FILE HOST PORT [--test-timeout S] [TEST ...]

SUITE_DIR is the suite's "interoperability" directory (from a checkout of
eclipse/paho.mqtt.testing, which is not part of this repository). FILE is
client_test.py (MQTT 3.1.1) or client_test5.py (MQTT 5). TEST names select
single tests (e.g. test_basic); by default all run.

Why a runner instead of "python3 client_test.py -p PORT": both files parse
their own options with getopt and then call unittest.main(), which parses
sys.argv again. client_test.py leaves "-p PORT" there, so unittest rejects it
and no test runs; client_test5.py removes "-p" but leaves the host option,
which unittest rejects too. This runner executes the file unchanged as
__main__ with the options the file expects, and hands unittest an argument
list of its own.

Some tests wait in unbounded loops for a packet (a will message, a
DISCONNECT) and hang forever when the broker never sends it; every test here
gets SIGALRM after --test-timeout seconds, which fails that test with the
stack of where it waited, and the run goes on.

Output: unittest's verbose output, then one line per test,
    PASS <file>/<test>
    FAIL <file>/<test>: <last line of the error>
then "<file>: N passed, M failed". Exit status 0 only when all passed.
"""

import argparse
import io
import os
import runpy
import signal
import sys
import traceback
import unittest


SUITE_DIR = "/"  # set in main(); frames under it are the suite's own


class TestTimeout(Exception):
    """A test ran past --test-timeout."""


class RecordingResult(unittest.TextTestResult):
    """TextTestResult that also remembers every test's outcome in order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = []  # (test id or setUpClass label, ok, why)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.outcomes.append((_name(test), True, ""))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.outcomes.append((_name(test), False, _why(err)))

    def addError(self, test, err):
        super().addError(test, err)
        self.outcomes.append((_name(test), False, _why(err)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.outcomes.append((_name(test), False, f"skipped: {reason}"))

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.outcomes.append((_name(test), True, ""))

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.outcomes.append((_name(test), False, "unexpected success"))


def _name(test):
    method = getattr(test, "_testMethodName", None)
    if method:
        return method
    # A class or module fixture failure (setUpClass) arrives as an
    # _ErrorHolder whose description names the fixture.
    return str(test).split(" ")[0]


def _why(err):
    exc_type, exc, _ = err
    text = "".join(traceback.format_exception_only(exc_type, exc)).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if "; the test printed: " in text:
        return lines[-1] if lines else exc_type.__name__
    where = ""
    frames = [f for f in traceback.extract_tb(err[2]) if f.filename.startswith(SUITE_DIR)]
    if frames:
        frame = frames[-1]
        where = f" (at {os.path.basename(frame.filename)}:{frame.lineno} {frame.line})"
    return (lines[-1] if lines else exc_type.__name__) + where


class Tee(io.TextIOBase):
    """Writes through to a stream and keeps a copy of what was written."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.copy = io.StringIO()

    def write(self, text):
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


def reported_error(text):
    """The last traceback a test printed itself, as "Error: text (at line)".

    Many of the suite's tests catch their own assertion, print it with
    traceback.print_exc() and then fail on `assertEqual(succeeded, True)`;
    the printed traceback is the real reason.
    """
    start = text.rfind("Traceback (most recent call last):")
    if start < 0:
        return ""
    lines = [line for line in text[start:].splitlines()[1:] if line.strip()]
    where = ""
    error = ""
    for i, line in enumerate(lines):
        if line.startswith("  File "):
            # Name the innermost frame in the suite's own files, not in
            # unittest or the standard library.
            if SUITE_DIR in line and i + 1 < len(lines) and lines[i + 1].startswith("    "):
                where = f"{_short_file_line(line)} {lines[i + 1].strip()}"
            continue
        if not line.startswith(" "):
            error = line.strip()
            break
    if not error:
        return ""
    return error + (f" (at {where})" if where else "")


def _short_file_line(line):
    """'  File "/x/y/client_test.py", line 361, in f' -> 'client_test.py:361'."""
    try:
        path = line.split('"')[1]
        number = line.split(", line ")[1].split(",")[0]
        return f"{os.path.basename(path)}:{number}"
    except IndexError:
        return line.strip()


def with_deadline(method, seconds):
    def run(self, *args, **kwargs):
        def expired(signum, frame):
            raise TestTimeout(f"test still running after {seconds}s (a wait in the test never ended)")

        previous = signal.signal(signal.SIGALRM, expired)
        tee = Tee(sys.stderr)
        sys.stderr = tee
        signal.alarm(seconds)
        try:
            return method(self, *args, **kwargs)
        except AssertionError as exc:
            own = reported_error(tee.copy.getvalue())
            if own:
                raise AssertionError(f"{exc}; the test printed: {own}") from None
            raise
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
            sys.stderr = tee.stream

    run.__name__ = method.__name__
    run.__doc__ = method.__doc__
    return run


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite_dir")
    p.add_argument("file", choices=("client_test.py", "client_test5.py"))
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--test-timeout", type=int, default=60)
    p.add_argument("tests", nargs="*")
    args = p.parse_args()

    global SUITE_DIR
    suite_dir = os.path.abspath(args.suite_dir)
    SUITE_DIR = suite_dir + os.sep
    path = os.path.join(suite_dir, args.file)
    if not os.path.isfile(path):
        print(f"paho_suite_run: no {args.file} in {suite_dir}", file=sys.stderr)
        return 2
    label = os.path.splitext(args.file)[0]

    # The file imports its client package ("mqtt.clients...") relative to
    # its own directory.
    sys.path.insert(0, suite_dir)
    os.chdir(suite_dir)
    # What the file's own getopt loop reads: host and port. The host goes in
    # the long form: both files test options with `o in ("--help")`, a
    # substring test on a string, so "-h" would print the usage and exit.
    # The port goes in the short form, which is the one client_test5.py
    # knows how to take out of sys.argv again.
    sys.argv = [path, f"--hostname={args.host}", "-p", str(args.port)]

    outcome = {}

    def run_tests(*_ignored, **kwargs):
        module = sys.modules["__main__"]  # the suite file, while runpy runs it
        test_class = module.Test
        names = sorted(n for n in dir(test_class) if n.startswith("test"))
        for name in names:
            setattr(test_class, name, with_deadline(getattr(test_class, name), args.test_timeout))
        selected = args.tests or names
        unknown = [t for t in selected if t not in names]
        if unknown:
            print(f"paho_suite_run: {label} has no test {', '.join(unknown)}; it has {', '.join(names)}",
                  file=sys.stderr)
            raise SystemExit(2)
        suite = unittest.TestSuite(test_class(name) for name in selected)
        runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=RecordingResult)
        outcome["result"] = runner.run(suite)
        outcome["selected"] = selected
        # The file loops "for i in range(iterations): unittest.main()"; one
        # run is all we want, so leave the file here.
        raise SystemExit(0)

    unittest.main = run_tests
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        if "result" not in outcome:
            return exc.code if isinstance(exc.code, int) else 2

    result = outcome["result"]
    seen = {name for name, _, _ in result.outcomes}
    lines = []
    for name, ok, why in result.outcomes:
        lines.append(f"PASS {label}/{name}" if ok else f"FAIL {label}/{name}: {why}")
    # Tests that never ran because a class fixture failed first.
    for name in outcome["selected"]:
        if name not in seen:
            lines.append(f"FAIL {label}/{name}: not run (the class set-up failed)")
    passed = sum(1 for line in lines if line.startswith("PASS "))
    failed = len(lines) - passed
    print()
    for line in lines:
        print(line)
    print(f"{label}: {passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The suite's clients run receiver threads that may still sit in a
    # socket read after a failed test; do not wait for them.
    os._exit(code)
