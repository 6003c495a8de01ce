"""The AVA domain without Apache Beam or TensorFlow: AVA's files, the vote maths, the
rejection reasons, the image normalisation that the build and serving share, and the
synthetic AVA-format sample."""
