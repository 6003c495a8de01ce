# The two commands of the README's quick start: `make demo` and `make test`.
PYTHON ?= python3
WORKDIR ?= workdir
# Local Beam runs name their runner: DirectRunner would first try to download Prism.
LOCAL_BEAM = --runner=FnApiRunner --direct_num_workers=2 --direct_running_mode=multi_processing

.PHONY: install demo test

install:
	$(PYTHON) -m pip install --quiet -e '.[test,gcp]'

demo: install
	$(PYTHON) -m beam_pipelines.build --config=sample --output_dir=$(WORKDIR)/tfds $(LOCAL_BEAM)

test: install
	$(PYTHON) -m pytest
