"""The command that runs the dataset build on any Beam runner, locally or on Dataflow.

The Beam graph itself lives beside the TFDS builder it serves (`ava_tfds/ava/transforms.py`),
as TFDS keeps a Beam builder's helpers; the AVA domain it validates with is `ava_core`.
"""
