# The two commands of the README's quick start: `make demo` and `make test`.
PYTHON ?= python3
WORKDIR ?= workdir
RUN = $(WORKDIR)/run

.PHONY: install demo test

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

test: install
	$(PYTHON) -m pytest
