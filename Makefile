# Fresh-machine entry points. Each target creates the virtual environment itself (.venv).
#   make demo  - set up, train MobileNetV2 + DeepLabV3 on the synthetic VOC-format set, evaluate, draw predictions
#   make test  - set up and run the whole test suite (what .ci/run runs)
#   make test-fast - set up and run the tests not marked slow (no training runs, subprocesses, wheels, benchmarks)
#   make lint  - ruff check + ruff format --check (what .ci/run runs before the tests)
#   make browser-deps - onnxruntime-web (npm ci) and, on Debian, Chromium + chromedriver: the browser test of
#                 segkit export --format web (skipped, saying why, without them; .ci/run runs this)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORK_DIR ?= work_dirs/demo_mnv2_os16

.PHONY: setup demo test test-fast lint clean browser-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e ".[dev]"
	$(PY) -c "import torch, torchvision, segmentation_models_pytorch, albumentations, pycocotools"
	touch $@

setup: $(VENV)/.installed

# npm ci installs package-lock.json's pinned onnxruntime-web into node_modules (it writes node_modules/.package-lock.json)
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps: node_modules/.package-lock.json
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver; }

demo: setup
	$(PY) tools/train.py --config demo_mnv2_os16 --work-dir $(WORK_DIR) --overwrite
	$(PY) tools/test.py --checkpoint $(WORK_DIR)/best.pth --json $(WORK_DIR)/eval_val.json --save-pred $(WORK_DIR)/predictions

# pytest's exit status 5 ("no tests ran": a wrong testpaths, a -m that selects nothing) fails the target, said in words.
NO_TESTS = { rc=$$?; [ $$rc -ne 5 ] || echo "make $@: pytest ran no tests (exit status 5): that is a failure" >&2; exit $$rc; }

test: setup
	$(PY) -m pytest -q || $(NO_TESTS)

test-fast: setup
	$(PY) -m pytest -q -m "not slow" || $(NO_TESTS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf work_dirs .pytest_cache
