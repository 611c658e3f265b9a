# Set-up is idempotent: the virtual environment is (re)built only when pyproject.toml changes.
VENV   := .venv
PY     := $(VENV)/bin/python
BENCH  := $(VENV)/bin/bench
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup demo test regress report motion clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

demo: setup
	$(BENCH) compare --methods frame,prop-flow,prop-mv,interp-mv --dataset synthcity --intervals 1-10

report: setup
	$(BENCH) report --dataset synthcity

motion: setup
	$(BENCH) motion --dataset synthcity

test: setup
	$(PY) -m pytest -q

regress: setup
	$(BENCH) regress

clean:
	rm -rf data checkpoints results/runs reports/synthcity reports/motion
