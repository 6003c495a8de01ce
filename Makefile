# The commands of the README's quick start: `make demo`, `make demo-heads` and `make test`.
PYTHON ?= python3
WORKDIR ?= workdir
RUN = $(WORKDIR)/run
HEADS = $(WORKDIR)/heads
SAMPLE_FULL = --config.dataset.data_dir=$(WORKDIR)/tfds --config.dataset.name=ava/sample_full

.PHONY: install demo demo-heads test

install:
	$(PYTHON) -m pip install --quiet -e '.[test,gcp]'

# The whole system on the embedded synthetic sample, in a few minutes on a laptop.
demo: install
	$(PYTHON) -m beam_pipelines.build --config=sample --output_dir=$(WORKDIR)/tfds
	$(PYTHON) -m trainer.main --config=configs/demo.py --workdir=$(RUN) --config.dataset.data_dir=$(WORKDIR)/tfds
	$(PYTHON) -m trainer.evaluate --workdir=$(RUN)
	$(PYTHON) -m serving.export --workdir=$(RUN) --export_dir=$(WORKDIR)/export
	@echo "Scoring the sample's photos; its planted broken files are reported one by one (exit code 1)."
	-$(PYTHON) -m serving.predict --model=$(WORKDIR)/export --top=10 $(WORKDIR)/tfds/downloads/synthetic_ava_400/images
	@echo "Dataset: $(WORKDIR)/tfds/ava/sample/1.0.0 (stats.json, rejected.jsonl, eda.png)"
	@echo "Run: $(RUN) (history.csv, tensorboard/); report and figures: $(RUN)/eval; SavedModel: $(WORKDIR)/export"

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

test: install
	$(PYTHON) -m pytest
