"""Scores photo files with an exported SavedModel through both of its signatures, as TF
Serving at this interpreter's TensorFlow would, and prints one JSON line: each file's mean
by the bytes signature (or the error that signature raised) and by the pixel signature.

    python cloud_versions/score_export.py EXPORT_DIR PHOTO...
"""

import json
import pathlib
import sys

import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from serving import signature  # noqa: E402
from trainer import model_input  # noqa: E402


def main(export_dir: str, photos: list[str]) -> None:
    loaded = tf.saved_model.load(export_dir)
    info = json.loads((pathlib.Path(export_dir) / signature.EXTRA_DIR / signature.INFO_FILE).read_text())
    contract = model_input.InputContract.from_json(info[signature.INPUT_CONTRACT])
    scores = {}
    for path in photos:
        data = pathlib.Path(path).read_bytes()
        name = pathlib.Path(path).name
        try:
            served = loaded.signatures[signature.SIGNATURE](**{signature.IMAGES: tf.constant([data])})
            scores[f"{name} bytes"] = float(served[signature.MEAN][0])
        except Exception as error:  # what a TF Serving client would get back instead
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            reason = next((line for line in lines if not line.startswith(("Graph execution", "Detected at", "<stack", "[["))), "")
            scores[f"{name} bytes"] = f"{type(error).__name__}: {reason[:120]}"
        pixels = contract.from_photo(data)
        served = loaded.signatures[signature.PIXELS_SIGNATURE](**{signature.PIXELS: tf.constant(pixels[None])})
        scores[f"{name} pixels"] = float(served[signature.MEAN][0])
    print(json.dumps({"tensorflow": tf.__version__, "scores": scores}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
