# Fresh-machine entry points. Each target creates the virtual environment itself (.venv).
#   make demo  - set up, train MobileNetV2 + DeepLabV3 on the synthetic VOC-format set, evaluate, draw predictions
#   make test  - set up and run the test suite
#   make lint  - ruff check + ruff format --check (what .ci/run runs before the tests)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORK_DIR ?= work_dirs/demo_mnv2_os16

.PHONY: setup demo test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e ".[dev]"
	$(PY) -c "import torch, torchvision, segmentation_models_pytorch, albumentations, pycocotools"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) tools/train.py --config demo_mnv2_os16 --work-dir $(WORK_DIR) --overwrite
	$(PY) tools/test.py --checkpoint $(WORK_DIR)/best.pth --json $(WORK_DIR)/eval_val.json --save-pred $(WORK_DIR)/predictions

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf work_dirs .pytest_cache
