# `make demo` and `make test` set everything up from nothing, idempotently.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo demo-localisation paper test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# tensorflow-serving-api (TF-Serving's protos: warmup records, the gRPC client) declares a
# dependency on the full `tensorflow` wheel, which must not sit beside tensorflow-cpu.
BASE_EXTRAS := cpu,plot,transfer
BASE_NO_DEPS := tensorflow-serving-api==2.21.0
# keras-hub (the KerasHub preset tests) declares tensorflow-text, which needs the full
# `tensorflow` wheel, and a Kaggle client for downloads the tests never make: it is
# installed without its dependencies, with the two its import needs.
TEST_EXTRAS := torch,test
TEST_NO_DEPS := keras-hub==0.32.0 regex==2026.11.19 tokenizers==0.23.3

$(VENV)/.base-installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e ".[$(BASE_EXTRAS)]"
	$(BIN)/pip install --quiet --no-deps $(BASE_NO_DEPS)
	touch $@

# The base and the test packages in one pip run (one resolve, one editable build), which
# also makes the base: a separate run after the base's took 8 s longer. Nothing is compiled
# ahead: `make test` compiles what its tests import (below).
$(VENV)/.test-installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet --no-compile -e ".[$(BASE_EXTRAS),$(TEST_EXTRAS)]"
	$(BIN)/pip install --quiet --no-compile --no-deps $(BASE_NO_DEPS) $(TEST_NO_DEPS)
	touch $(VENV)/.base-installed $@

demo: $(VENV)/.base-installed
	$(BIN)/python recipes/demo.py

# Localisation (Appendix A) on the demo's images; uses demo/run when `make demo` made it.
demo-localisation: $(VENV)/.base-installed
	$(BIN)/python recipes/demo_localisation.py

# The paper's findings in miniature (recipes/paper.py): trains its small nets on generated
# scenes and writes paper/report.md with its plots; the time it took is in the report.
paper: $(VENV)/.base-installed
	$(BIN)/python recipes/paper.py

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .

# The whole suite on the TensorFlow backend in one session (the quick tests with the
# full-size and slow ones: the shared runs train once), and beside it, on the core it leaves
# idle (it runs TensorFlow one process at a time, at 1.2 cores on average), what needs no
# TensorFlow process: the wheel's environment (pip), then, under KERAS_BACKEND=jax, the
# model tests (full-size graph comparisons are backend-independent and run in the
# TensorFlow pass; the other slow ones start TensorFlow processes) and the tests whose
# processes run no TensorFlow. Their logs follow the TensorFlow pass's, which ends with its
# 20 slowest tests, where the suite's time goes. Then the package as pip installs it: an
# installed command run in the wheel's environment.
INSTALLED_LOG := build/installed_package.log
BESIDE_LOG := build/beside_tensorflow.log
BESIDE_TESTS := tests/test_backends.py tests/test_contract.py tests/test_kerashub.py \
	tests/test_benchmarks.py -m "(not full_size and not slow) or without_tensorflow"
# make test's Pythons keep the bytecode of the modules they import, in __pycache__, as Python does
# unless PYTHONDONTWRITEBYTECODE is set (an empty value unsets it): the first import
# compiles each module once, 5,100 of the environment's 16,700, where compiling them all
# ahead took 23-34 s on two cores here, and compiling on every import costs each process.
test: export PYTHONDONTWRITEBYTECODE :=
test: lint
	mkdir -p build
	{ bash .ci/installed_package.sh install $(BIN)/python > $(INSTALLED_LOG) 2>&1; \
	  echo $$? > build/installed_package.status; \
	  KERAS_BACKEND=jax $(BIN)/python -m pytest $(BESIDE_TESTS) > $(BESIDE_LOG) 2>&1; } & \
	beside=$$!; \
	$(BIN)/python -m pytest -m "not without_tensorflow" --durations=20; tests=$$?; \
	wait $$beside; beside=$$?; \
	echo "Beside it, on JAX and without TensorFlow ($(BESIDE_LOG)):"; cat $(BESIDE_LOG); \
	[ "$$(cat build/installed_package.status)" = 0 ] || { cat $(INSTALLED_LOG); exit 1; }; \
	exit $$(( tests || beside ))
	bash .ci/installed_package.sh check $(BIN)/python

# torchvision, the input pipeline's peer, in an environment of its own: its only wheels are
# built against CUDA torch (they run on the CPU too), which must not replace the package's
# CPU torch.
PEERS := build/peers
$(PEERS)/.installed:
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1 pillow numpy
	touch $@

# Measured comparisons; each writes its figures into BENCHMARKS.md.
# dense_eval measures top-1 agreement with the demo's trained net: run `make demo` first.
bench: $(VENV)/.test-installed $(PEERS)/.installed
	$(BIN)/python -m benchmarks.pipeline --torch_python=$(PEERS)/bin/python
	$(BIN)/python -m benchmarks.pipeline_all_cores --torch_python=$(PEERS)/bin/python
	$(BIN)/python -m benchmarks.inference
	$(BIN)/python -m benchmarks.startup
	$(BIN)/python -m benchmarks.training
	$(BIN)/python -m benchmarks.initialisation
	$(BIN)/python -m benchmarks.small_data --fine_tune_epochs=40
	$(BIN)/python -m benchmarks.distributed
	$(BIN)/python -m benchmarks.dense_eval
	$(BIN)/python -m benchmarks.serving
	KERAS_BACKEND=jax $(BIN)/python -m benchmarks.gpu_training

clean:
	rm -rf $(VENV) build *.egg-info
