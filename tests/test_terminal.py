"""The terminal for people (`ava_core.terminal`): a command's own lines, not TensorFlow's
and absl's INFO lines, unless absl's --verbosity asks for them."""

import os
import re
import subprocess
import sys

import pytest

from ava_core import terminal

PROGRAM = """
from ava_core import terminal
terminal.quiet_tensorflow()
import tensorflow as tf
from absl import logging
def main(argv):
    logging.info("an INFO line of absl")
    tf.get_logger().info("an INFO line of TensorFlow")
    logging.warning("a warning")
    print("the command's own line")
terminal.run(main)
"""


# A process a case: the default, and absl's short flag asking for INFO. How each other
# spelling is read is `asks_for_info`'s, below; absl then applies the value it parsed.
@pytest.mark.parametrize("arguments, shows_info", [([], False), (["-v", "0"], True)])
def test_info_lines_are_off_unless_verbosity_asks(arguments, shows_info):
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    run = subprocess.run([sys.executable, "-c", PROGRAM, *arguments], capture_output=True, text=True, check=True, env=env)
    assert run.stdout == "the command's own line\n"
    assert "a warning" in run.stderr
    for line in ("an INFO line of absl", "an INFO line of TensorFlow"):
        assert (line in run.stderr) == shows_info, (line, run.stderr)
    if not shows_info:  # nor any C++ INFO line of TensorFlow's start-up (oneDNN, CUDA probes...)
        assert not re.search(r"^I\d{4} ", run.stderr, re.MULTILINE), run.stderr


def test_verbosity_values_below_info_keep_tensorflow_quiet():
    assert not terminal.asks_for_info(["prog", "--verbosity=-1"]) and not terminal.asks_for_info(["prog", "-v", "-2"])
    assert terminal.asks_for_info(["prog", "-v=1"]) and terminal.asks_for_info(["prog", "--v", "0"])
    assert terminal.asks_for_info(["prog", "--verbosity=0"]) and terminal.asks_for_info(["prog", "--verbosity", "1"])
    assert not terminal.asks_for_info(["prog", "--config.v=3"])


def test_only_info_lines_of_the_import_are_dropped():
    assert terminal._is_info("I0000 00:00:1796546319.610428   17468 port.cc:153] oneDNN custom operations are on.\n")
    assert terminal._is_info("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    assert not terminal._is_info("E0000 00:00:1796546272.682868   16960 cuda_platform.cc:52] failed call to cuInit\n")
    assert not terminal._is_info("W0000 00:00:1.0  1 x.cc:1] a warning\n")
    assert not terminal._is_info("Traceback (most recent call last):\n")
