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

# One test process per core (files stay whole, in their order), one torch
# thread each. A test still running after 15 minutes (the slowest takes
# about one) is hung: pytest-timeout ends its worker, which is not restarted
# (a restart would run the hung file again), and the run fails naming the
# test, long before CI's own time limit.
test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile --durations=20 \
	    --timeout=900 --timeout-method=thread --max-worker-restart=0 tests

demo: setup
	$(PY) tools/demo.py

clean:
	rm -rf $(VENV) build *.egg-info
