# The two commands of the README's quick start: `make demo` and `make test`.
PYTHON ?= python3
WORKDIR ?= workdir
RUN = $(WORKDIR)/run
# Local Beam runs name their runner: DirectRunner would first try to download Prism.
LOCAL_BEAM = --runner=FnApiRunner --direct_num_workers=2 --direct_running_mode=multi_processing

.PHONY: install demo test

install:
	$(PYTHON) -m pip install --quiet -e '.[test,gcp]'

# The whole system on the embedded synthetic sample, in a few minutes on a laptop.
demo: install
	$(PYTHON) -m beam_pipelines.build --config=sample --output_dir=$(WORKDIR)/tfds $(LOCAL_BEAM)
	$(PYTHON) -m trainer.main --config=configs/demo.py --workdir=$(RUN) --config.dataset.data_dir=$(WORKDIR)/tfds
	$(PYTHON) -m trainer.evaluate --workdir=$(RUN)
	$(PYTHON) -m trainer.export --workdir=$(RUN) --export_dir=$(WORKDIR)/export
	@echo "Scoring the sample's photos; its planted broken files are reported one by one (exit code 1)."
	-$(PYTHON) -m trainer.predict --model=$(WORKDIR)/export --top=10 $(WORKDIR)/tfds/downloads/synthetic_ava_400/images
	@echo "Dataset: $(WORKDIR)/tfds/ava/sample/1.0.0 (stats.json, rejected.jsonl, eda.png)"
	@echo "Run: $(RUN) (history.csv, tensorboard/); report and figures: $(RUN)/eval; SavedModel: $(WORKDIR)/export"

test: install
	$(PYTHON) -m pytest
