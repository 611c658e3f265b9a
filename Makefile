# Set-up is idempotent: the virtual environment is (re)built only when pyproject.toml changes.
VENV   := .venv
PY     := $(VENV)/bin/python
BENCH  := $(VENV)/bin/bench
ABLATIONS := psla:attention=matchtrans:setting=S,psla:attention=matchtrans:setting=F,psla:attention=dense-psla:setting=S,psla:attention=dense-psla:setting=F,psla:attention=nonlocal:setting=S,psla:attention=nonlocal:setting=F,psla:setting=a:d=2,psla:attention=matchtrans:setting=S:d=2,psla:attention=dense-psla:setting=S:d=2
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup demo demo-segmentation demo-detection demo-detection-full test regress report motion clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

demo: demo-segmentation demo-detection

demo-segmentation: setup
	$(BENCH) compare --methods frame,prop-flow,prop-mv,interp-mv --dataset synthcity --intervals 1-10

demo-detection: setup
	$(BENCH) compare --task detection --methods rfcn,dff,psla:setting=a,psla \
		--intervals 1,10 --speed-videos 2 --speed-rounds 3

# seed 001's ablations (Tables 3-5): every attention kind, S and F, d = 2 and 4; DFF vs PSLA (a)
# up to l = 35. About 25 minutes on 2 cores; re-uses what demo-detection trained and measured.
demo-detection-full: demo-detection
	$(BENCH) compare --task detection --intervals 10 --speed-videos 2 --speed-rounds 3 \
		--methods psla:setting=b,$(ABLATIONS)
	$(BENCH) compare --task detection --methods dff,psla:setting=a \
		--intervals 15,25,35 --speed-videos 2 --speed-rounds 3

report: setup
	$(BENCH) report --dataset synthcity
	$(BENCH) report --dataset synthdet

motion: setup
	$(BENCH) motion --dataset synthcity

test: setup
	$(PY) -m pytest -q

regress: setup
	$(BENCH) regress

clean:
	rm -rf data checkpoints results/runs reports/synthcity reports/synthdet reports/motion
