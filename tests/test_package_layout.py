"""The layout the README's table promises: packages depend one way, reading a dataset needs
no Beam, a local build no TensorFlow, and no module reaches into another's private names."""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("ava_core", "ava_tfds", "beam_pipelines", "trainer", "serving", "configs", "benchmarks")


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = ast.parse(path.read_text(), str(path))
    return modules


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, names) of every import statement, lazy ones inside functions included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def test_packages_depend_on_each_other_one_way():
    modules = _modules()
    edges: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for name, tree in modules.items():
        for imported, _ in _imports(tree):
            target = imported.split(".")[0]
            if target in PACKAGES and target != name.split(".")[0]:
                edges[name.split(".")[0]].add(target)

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in edges[start])

    cycles = [package for package in PACKAGES if reaches(package, package)]
    assert not cycles, f"packages in an import cycle: {cycles}; edges: {edges}"
    assert not edges["ava_core"], "ava_core is the domain every other package builds on: it imports none of them"


def test_no_module_imports_a_private_name_of_another():
    modules = _modules()
    offences = []
    for name, tree in modules.items():
        for imported, names in _imports(tree):
            if imported.split(".")[0] not in PACKAGES or imported == name:
                continue
            offences += [f"{name}: from {imported} import {n}" for n in names if n.startswith("_") and n != "__version__"]
        aliases = {alias.asname or alias.name: node.module + "." + alias.name if isinstance(node, ast.ImportFrom) else alias.name
                   for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "module", "") is not None
                   for alias in node.names}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and aliases[node.value.id].split(".")[0] in PACKAGES and aliases[node.value.id] != name):
                offences.append(f"{name}: {node.value.id}.{node.attr}")
    assert not offences, "private names used across modules:\n" + "\n".join(offences)


# What each layer loads, in one interpreter that imports them in turn, from the domain up:
# each check reads the packages loaded once its modules (and those before) are imported.
IMPORT_LAYERS = {
    "domain": [f"ava_core.{path.stem}" for path in sorted((REPO / "ava_core").glob("[!_]*.py"))],
    "scoring": ["serving.predict", "trainer.model_input", "serving.graph_decode"],
    "reading and serving": ["trainer.train", "trainer.input_pipeline", "serving.predict"],
}
_PACKAGES_LOADED = """
import importlib, json, sys
loaded = {}
for layer, modules in json.loads(sys.argv[1]).items():
    for module in modules:
        importlib.import_module(module)
    loaded[layer] = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps(loaded))
"""


@pytest.fixture(scope="module")
def packages_loaded() -> dict[str, set[str]]:
    """layer -> the top-level packages loaded once it and the layers before it are imported."""
    result = subprocess.run([sys.executable, "-c", _PACKAGES_LOADED, json.dumps(IMPORT_LAYERS)],
                            cwd=REPO, capture_output=True, text=True, check=True)
    return {layer: set(packages) for layer, packages in json.loads(result.stdout.strip().splitlines()[-1]).items()}


def test_the_domain_loads_neither_beam_nor_tensorflow(packages_loaded):
    assert not packages_loaded["domain"] & {"apache_beam", "tensorflow"}, IMPORT_LAYERS["domain"]


def test_scoring_loads_neither_tfds_nor_beam(packages_loaded):
    """A photo's pixels are defined without the dataset's reader: a serving host needs neither."""
    assert not packages_loaded["scoring"] & {"apache_beam", "tensorflow_datasets"}, IMPORT_LAYERS["scoring"]


def test_reading_and_serving_do_not_load_apache_beam(packages_loaded):
    assert "apache_beam" not in packages_loaded["reading and serving"], IMPORT_LAYERS["reading and serving"]
    assert "tensorflow_datasets" in packages_loaded["reading and serving"]  # the check sees what the modules load


def test_a_local_build_loads_no_tensorflow(tiny_ava, tmp_path):
    """TensorFlow's import costs a process several CPU-seconds, and a local build spends it
    for nothing: the launcher needs it only for gs:// paths (TFDS reaches them through
    tf.io.gfile), and the decode step encodes and frames its examples without it. The
    in-memory runner runs the decode step in this one process."""
    code = f"""
import sys
from beam_pipelines import build
build.main(["--config=256", "--ava_dir={tiny_ava.root}", "--output_dir={tmp_path / 'tfds'}",
            "--direct_num_workers=1", "--direct_running_mode=in_memory"])
print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow')[:5])
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", f"a local build loads TensorFlow: {result.stdout[-300:]}"
    assert list((tmp_path / "tfds").glob("ava/256/*/ava-train.tfrecord*")), "the build wrote no training shard"
