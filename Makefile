# Two commands do all set-up on a fresh machine (idempotent):
#   make demo   # small split-Fashion-MNIST run on an embedded local Ray
#   make test   # the whole test suite (CI runs this through .ci/run)
PY      ?= python3.11
VENV    ?= .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
FMNIST  := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
PYTEST_ARGS ?=

.PHONY: setup demo test lint clean

$(PYTHON):
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)

# Re-install only when the pins change. torch/torchvision are pinned in pyproject.toml
# (the one place); pip takes them from local disk where a mirror provides them.
$(STAMP): pyproject.toml | $(PYTHON)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian ships Fashion-MNIST; install it when we can (root) and it is missing.
$(FMNIST):
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null) || \
	  echo "note: could not install dataset-fashion-mnist; torchvision's download will be tried"; \
	else echo "note: not root; Fashion-MNIST comes from BINPLAY_DATA_MIRROR or torchvision's download"; fi

setup: $(STAMP)
	@[ -f $(FMNIST) ] || $(MAKE) --no-print-directory $(FMNIST) || true

demo: setup
	$(PYTHON) -m jobs.train --config configs/smoke.yaml

test: setup
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check service jobs tests

clean:
	rm -rf runs .pytest_cache
