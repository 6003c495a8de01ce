"""The terminal for people: a command shows its own lines and progress bars, and keeps
TensorFlow's and absl's INFO lines (savers, dataset readers, CUDA probes) and TensorFlow's
C++ warnings off. absl's `--verbosity=0` (`-v 0`) brings them back, as `--log_level` does
for the build's Beam lines.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import Callable, Sequence

_VERBOSITY_FLAGS = ("--verbosity", "-v", "--v")


def quiet_tensorflow(argv: Sequence[str] = sys.argv) -> None:
    """Loads TensorFlow with its C++ INFO and WARNING lines off, unless the command line asks
    for absl's INFO. Call it before TensorFlow loads: the library reads its level once."""
    if not asks_for_info(argv):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        honour_tf_log_level()


def honour_tf_log_level() -> None:
    """Loads TensorFlow as TF_CPP_MIN_LOG_LEVEL (when set above 0) says. TF 2.19 and later
    print their start-up lines (oneDNN, CUDA probes) before they read it
    (tensorflow/tensorflow#100442), so the import's own output is filtered as it comes: its
    INFO lines are dropped and every other line is passed on at once, so that a crash while
    loading still shows why."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("", "0") or "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        reading, writing = os.pipe()
    except OSError:  # no stderr to filter
        import tensorflow  # noqa: F401

        return
    forwarder = threading.Thread(target=_forward_all_but_info, args=(reading, saved), daemon=True)
    forwarder.start()
    os.dup2(writing, 2)
    os.close(writing)
    try:
        import tensorflow  # noqa: F401,F811
    finally:
        os.dup2(saved, 2)  # closes the pipe's last writer: the forwarder reads to its end
        forwarder.join(timeout=10)
        os.close(saved)


def _forward_all_but_info(reading: int, destination: int) -> None:
    with os.fdopen(reading, "rb") as pipe:
        for line in pipe:
            if not _is_info(line.decode(errors="replace")):
                os.write(destination, line)


def _is_info(line: str) -> bool:
    """A C++ INFO line (`I0000 00:00:...`) or absl's note that logging is not set up yet."""
    return bool(re.match(r"I\d{4} ", line)) or line.startswith("WARNING: All log messages before absl::InitializeLog()")


def asks_for_info(argv: Sequence[str]) -> bool:
    """Whether the command line sets absl's verbosity to INFO (0) or more."""
    for index, arg in enumerate(argv[1:], start=1):
        name, equals, value = arg.partition("=")
        if name in _VERBOSITY_FLAGS:
            value = value if equals else (argv[index + 1] if index + 1 < len(argv) else "")
            try:
                return int(value) >= 0
            except ValueError:
                return True  # absl will say what is wrong with it
    return False


def run(main: Callable[[list[str]], None], argv: list[str] | None = None) -> None:
    """absl's `app.run`, with WARNING rather than INFO as the verbosity when the command
    line does not set it (app.run raises an unset verbosity to INFO once flags are parsed)."""
    from absl import app, flags, logging

    def quiet_main(args: list[str]) -> None:
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)
        main(args)

    app.run(quiet_main, argv=argv)
