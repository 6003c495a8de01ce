"""The exported model's contract with its clients (TF Serving, Vertex AI, `serving.predict`):
the signature's name, its input and its outputs."""

SIGNATURE = "serving_default"
IMAGES = "images"  # [N] string: encoded image files
DISTRIBUTION = "distribution"  # [N, 10] float32: probability of each vote 1..10
MEAN = "mean"  # [N] float32: mean of the distribution, the score
STD = "std"  # [N] float32: its standard deviation, how much raters would disagree
