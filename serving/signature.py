"""The exported model's contract with its clients (TF Serving, Vertex AI, `serving.predict`,
a phone app with the TFLite model): the signatures' names, their inputs and their outputs."""

from trainer import heads

SIGNATURE = "serving_default"  # encoded files in: needs nothing but TensorFlow
IMAGES = "images"  # [N] string: encoded image files (JPEG, PNG, GIF, BMP; WebP from TF 2.20), any size

PIXELS_SIGNATURE = "score_pixels"  # the network's input: for clients that prepare photos themselves
# [N, S, S, 3] uint8: the pixels the evaluation feeds, upright sRGB RGB at the model's
# S x S (`trainer.model_input.InputContract.from_photo` makes them from any photo file). A
# whole-photo model (pyramid pooling) takes [N, H, W, 3] of any one shape instead.
PIXELS = "pixels"

# Beside the SavedModel, ignored by TF Serving: EXTRA_DIR/INFO_FILE (JSON) records under
# INPUT_CONTRACT how a photo becomes the pixel signature's input
# (`trainer.model_input.InputContract.to_json`): the model's size or whole-photo sizing,
# and the size and JPEG quality its training data was stored at.
EXTRA_DIR = "assets.extra"
INFO_FILE = "export_info.json"
INPUT_CONTRACT = "input"

# The outputs, named and computed by the model's head (trainer/heads.py); MEAN always.
MEAN = heads.MEAN  # [N] float32: the score (the distribution's mean, or the regression's); binary: a ranking score, 0.5 -> 5
DISTRIBUTION = heads.DISTRIBUTION  # [N, 10] float32, distribution head: probability of each vote 1..10
STD = heads.STD  # [N] float32, distribution head: its standard deviation, how much raters would disagree
PROBABILITY_BEAUTIFUL = heads.PROBABILITY_BEAUTIFUL  # [N] float32, binary head: P(mean vote > 5)
OUTPUTS = (DISTRIBUTION, MEAN, STD)  # the default (distribution) head's
