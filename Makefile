# `make test`: set up .venv (cached) and run the whole test suite.
# `make demo`: set up .venv and run the distillation demo.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmkd_setup_stamp

.PHONY: setup test demo clean

setup: $(STAMP)

$(STAMP): setup.py tools/setup_env.sh
	bash tools/setup_env.sh $(VENV)
	touch $@

test: setup
	$(PY) -m pytest -q --durations=15 tests

demo: setup
	$(PY) tools/demo.py

clean:
	rm -rf $(VENV) build *.egg-info
