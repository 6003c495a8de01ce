#!/usr/bin/env bash
# The cloud's own mix of versions, end to end (cloudbuild.yaml): a run trained in Vertex
# AI's container (the vertex-tf2.17 environment), evaluated and exported by the build's
# python:3.11 step (HOST_PYTHON: the newest versions, as `make test` installs them), and
# the export loaded and scored by TensorFlow 2.17, the serving image's version
# (_SERVING_IMAGE tf2-cpu.2-17), through both signatures beside the same scores at the host.
#
#   cloud_versions/cross.sh DIR HOST_PYTHON     (DIR/vertex-tf2.17 must exist: run.sh builds it)
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$1 host=$2
vertex=$dir/vertex-tf2.17/bin/python
work=$dir/cross
rm -rf "$work"
mkdir -p "$work/photos"
step() { echo "== cross: $*"; }

step "dataset (ava/sample) built at the host"
"$host" -m beam_pipelines.build --config=sample --output_dir="$work/tfds" --direct_num_workers=2 > "$work/build.log" 2>&1 || { tail -n 30 "$work/build.log"; exit 1; }
step "trained in the container's versions ($("$vertex" -c 'import tensorflow as t, keras as k; print("TF", t.__version__, "Keras", k.__version__)' 2>/dev/null))"
"$vertex" -m trainer.main --config=configs/demo.py --workdir="$work/run" --config.dataset.data_dir="$work/tfds" \
  --config.input.image_size=64 --config.train.max_steps_per_epoch=10 --config.head.epochs=1 --config.finetune.epochs=3 \
  > "$work/train.log" 2>&1 || { tail -n 30 "$work/train.log"; exit 1; }
step "evaluated and exported at the host ($("$host" -c 'import tensorflow as t, keras as k; print("TF", t.__version__, "Keras", k.__version__)' 2>/dev/null))"
# The latest checkpoint, not the best: the best of so short a run can still score every
# photo alike (batch-norm statistics barely moved), and then the comparison shows nothing.
rm -rf "$work/run/best"
"$host" -m trainer.evaluate --workdir="$work/run" > "$work/evaluate.log" 2>&1 || { tail -n 30 "$work/evaluate.log"; exit 1; }
"$host" -m serving.export --workdir="$work/run" --export_dir="$work/export" > "$work/export.log" 2>&1 || { tail -n 30 "$work/export.log"; exit 1; }

# Four of the sample's photos that Pillow reads whole (it plants broken ones), and the
# first of them again as lossless WebP and as PNG.
"$host" - "$work/tfds" "$work/photos" <<'EOF'
import pathlib, shutil, sys
from PIL import Image
source, photos = (pathlib.Path(p) for p in sys.argv[1:])
chosen = []
for path in sorted(source.rglob("*.jpg")):
    try:
        with Image.open(path) as image:
            image.load()
    except Exception:
        continue
    chosen.append(shutil.copy(path, photos))
    if len(chosen) == 4:
        break
first = pathlib.Path(chosen[0])
Image.open(first).convert("RGB").save(photos / f"{first.stem}.webp", lossless=True)
Image.open(first).convert("RGB").save(photos / f"{first.stem}.png")
EOF
step "scored at the host and at TF 2.17"
"$host" cloud_versions/score_export.py "$work/export" "$work"/photos/* 2>/dev/null | tail -n 1 > "$work/scores-host.json"
"$vertex" cloud_versions/score_export.py "$work/export" "$work"/photos/* 2>/dev/null | tail -n 1 > "$work/scores-tf2.17.json"
"$host" - "$work/scores-host.json" "$work/scores-tf2.17.json" <<'EOF'
import json, sys
host, old = (json.load(open(path)) for path in sys.argv[1:])
print(f"   {'photo and signature':<28} {'TF ' + host['tensorflow']:>12} {'TF ' + old['tensorflow']:>12}")
status = 0
if len({round(s, 7) for s in host["scores"].values() if isinstance(s, float)}) < 2:
    print("   (every photo got the same score: the comparison shows nothing; train longer)")
    status = 1
for name, score in host["scores"].items():
    other = old["scores"].get(name)
    same = isinstance(score, float) and isinstance(other, float) and abs(score - other) <= 1e-6
    status |= not same
    show = lambda s: f"{s:12.7f}" if isinstance(s, float) else f"  {s}"
    print(f"   {name:<28} {show(score)} {show(other)}{'' if same else '   <- differs'}")
sys.exit(status)
EOF
