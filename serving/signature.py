"""The exported model's contract with its clients (TF Serving, Vertex AI, `serving.predict`,
a phone app with the TFLite model): the signatures' names, their inputs and their outputs."""

SIGNATURE = "serving_default"  # encoded files in: needs nothing but TensorFlow
IMAGES = "images"  # [N] string: encoded image files (JPEG, PNG, GIF, BMP, WebP), any size

PIXELS_SIGNATURE = "score_pixels"  # decoded pixels in: for clients that normalise photos themselves
# [N, S, S, 3] uint8: upright sRGB RGB, already squashed to the model's S x S (bilinear,
# antialiased); S is in the signature's shape and in assets.extra/export_info.json.
PIXELS = "pixels"

DISTRIBUTION = "distribution"  # [N, 10] float32: probability of each vote 1..10
MEAN = "mean"  # [N] float32: mean of the distribution, the score
STD = "std"  # [N] float32: its standard deviation, how much raters would disagree
OUTPUTS = (DISTRIBUTION, MEAN, STD)
