"""Runs a module as `python -m` would, and lists every local file it opens after its Beam
pipeline finished (`Pipeline.__exit__`: run, then wait_until_finish), in AUDIT_FILE.

On Dataflow what the launcher does after the job (naming the shards, dataset_info.json,
the summary) must read the bucket only: the workers write nothing on the launcher's disk.
Files of the interpreter and its packages are left out: code, not data.

    python tests/launcher_audit.py AUDIT_FILE MODULE [ARGS...]
"""

import json
import os
import runpy
import site
import sys

import apache_beam as beam

_CODE_DIRS = tuple(
    os.path.realpath(path) for path in {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
)
_SYSTEM_DIRS = ("/proc/", "/sys/", "/dev/", "/etc/")
_CODE_SUFFIXES = (".py", ".pyc", ".so")


def main() -> None:
    audit_file, module, *args = sys.argv[1:]
    state = {"pipeline_finished": False, "opened": []}
    original_exit = beam.Pipeline.__exit__

    def exit_and_mark(self, *exc):
        result = original_exit(self, *exc)
        state["pipeline_finished"] = True
        return result

    def audit(event, event_args):
        if not state["pipeline_finished"] or event != "open" or not isinstance(event_args[0], (str, bytes, os.PathLike)):
            return
        path = os.path.realpath(os.fsdecode(event_args[0]))
        if path != audit_path and not path.startswith(_CODE_DIRS + _SYSTEM_DIRS) and not path.endswith(_CODE_SUFFIXES):
            state["opened"].append(path)

    audit_path = os.path.realpath(audit_file)
    beam.Pipeline.__exit__ = exit_and_mark
    sys.addaudithook(audit)
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        with open(audit_file, "w") as file:
            json.dump(state, file)


if __name__ == "__main__":
    main()
