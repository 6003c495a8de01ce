# The commands of the README's quick start: `make demo`, `make demo-heads` and `make test`.
PYTHON ?= python3
WORKDIR ?= workdir
RUN = $(WORKDIR)/run
HEADS = $(WORKDIR)/heads
# The sample's original photos, where the build of the `sample` config wrote them.
SAMPLE_PHOTOS = $$($(PYTHON) -c "from ava_tfds.ava import ava_dataset_builder as b; print(b.sample_images_dir('$(WORKDIR)/tfds', 'sample'))")
SAMPLE_FULL = --config.dataset.data_dir=$(WORKDIR)/tfds --config.dataset.name=ava/sample_full

.PHONY: install demo demo-heads test test-cloud-versions pages-check

install:
	$(PYTHON) -m pip install --quiet -e '.[test,gcp]'

# The whole system on the embedded synthetic sample, in a few minutes on a laptop.
demo: install
	$(PYTHON) -m beam_pipelines.build --config=sample --output_dir=$(WORKDIR)/tfds
	$(PYTHON) -m trainer.main --config=configs/demo.py --workdir=$(RUN) --config.dataset.data_dir=$(WORKDIR)/tfds
	$(PYTHON) -m trainer.evaluate --workdir=$(RUN)
	$(PYTHON) -m serving.export --workdir=$(RUN) --export_dir=$(WORKDIR)/export
	@echo "Scoring the sample's photos; its planted broken files are reported one by one (exit code 1)."
	-$(PYTHON) -m serving.predict --model=$(WORKDIR)/export --top=10 --html=$(WORKDIR)/ranking.html $(SAMPLE_PHOTOS)
	@echo "Pages to open in a browser: the ranked photos $(WORKDIR)/ranking.html, the evaluation $(RUN)/eval/report.html,"
	@echo "the build $(WORKDIR)/tfds/ava/sample/<version>/report.html (beside stats.json, rejected.jsonl, eda.png)"
	@echo "Run: $(RUN) (history.csv, tensorboard/); SavedModel: $(WORKDIR)/export"

# The write-ups' other systems on the sample's wide and tall photos (`sample_full`): the
# three heads on square crops, the pyramid pooling model on whole photos, one comparison.
demo-heads: install
	$(PYTHON) -m beam_pipelines.build --config=sample_full --output_dir=$(WORKDIR)/tfds
	$(PYTHON) -m trainer.main --config=configs/demo.py --workdir=$(HEADS)/distribution $(SAMPLE_FULL)
	$(PYTHON) -m trainer.main --config=configs/demo.py --workdir=$(HEADS)/regression $(SAMPLE_FULL) --config.model.head=regression
	$(PYTHON) -m trainer.main --config=configs/demo.py --workdir=$(HEADS)/binary $(SAMPLE_FULL) --config.model.head=binary
	$(PYTHON) -m trainer.main --config=configs/nima_spp.py:demo --workdir=$(HEADS)/spp --config.dataset.data_dir=$(WORKDIR)/tfds
	$(PYTHON) -m trainer.evaluate --workdir=$(HEADS)/distribution --compare=$(HEADS)/regression,$(HEADS)/binary,$(HEADS)/spp
	@echo "Runs: $(HEADS)/{distribution,regression,binary,spp}; the comparison: $(HEADS)/distribution/eval/comparison.md"

# Bytecode first: the suite starts dozens of Python processes, and where the environment
# sets PYTHONDONTWRITEBYTECODE (as CI images often do) each would compile the project again.
test: install
	$(PYTHON) -m compileall -q ava_core ava_tfds beam_pipelines trainer serving configs benchmarks tests
	$(PYTHON) -m pytest

# The trainer, export and predict tests at the versions that run in the cloud (issue 18):
# `vertex-tf2.17`, Vertex AI's prebuilt training container (cloudbuild.yaml's _TRAIN_IMAGE:
# Python 3.10, TF 2.17.1, Keras 3.4.1), and `floor`, setup.py's lower bounds on Python 3.10.
# Each is a virtual environment under $(CLOUD_VERSIONS_DIR)/NAME installed against
# cloud_versions/NAME.txt, built and tested one after the other; logs in NAME/pytest.log.
# Then `cross`: a run trained at the container's versions, evaluated and exported with
# $(PYTHON) (cloudbuild's python:3.11 step) and scored at TF 2.17 (its _SERVING_IMAGE).
CLOUD_VERSIONS_DIR ?= .cloud-versions
CLOUD_VERSIONS_ENVS ?= vertex-tf2.17 floor cross
CLOUD_VERSIONS_PYTHON ?= python3.10
CLOUD_VERSIONS_TIMEOUT ?= 1500
CLOUD_VERSIONS_TESTS ?= tests/test_training.py tests/test_loop.py tests/test_models.py tests/test_heads.py \
	tests/test_export_heads.py tests/test_serving.py tests/test_scoring_pixels.py tests/test_metrics.py \
	tests/test_input_pipeline.py tests/test_score_parity.py tests/test_promote.py

test-cloud-versions:
	HOST_PYTHON=$(PYTHON) bash cloud_versions/run.sh $(CLOUD_VERSIONS_DIR) "$(CLOUD_VERSIONS_PYTHON)" $(CLOUD_VERSIONS_TIMEOUT) "$(CLOUD_VERSIONS_ENVS)" $(CLOUD_VERSIONS_TESTS)

# The demo's pages in headless Chromium at a desktop and a phone width, after `make demo`:
# load time, missing files, script errors, the ranking's sorting and filtering, the weight of
# a 1,000-photo ranking; screenshots in $(WORKDIR)/pages-check. Needs Debian's Chromium
# (`apt-get install chromium`); Playwright drives it (installed here, not a dependency).
pages-check: install
	$(PYTHON) -m pip install --quiet 'playwright>=1.40'
	$(PYTHON) tools/pages_check.py --workdir=$(WORKDIR)
