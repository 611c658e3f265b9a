# Set-up is idempotent: the virtual environment is (re)built only when pyproject.toml changes.
VENV   := .venv
PY     := $(VENV)/bin/python
BENCH  := $(VENV)/bin/bench
ABLATIONS := psla:attention=matchtrans:setting=S,psla:attention=matchtrans:setting=F,psla:attention=dense-psla:setting=S,psla:attention=dense-psla:setting=F,psla:attention=nonlocal:setting=S,psla:attention=nonlocal:setting=F,psla:setting=a:d=2,psla:attention=matchtrans:setting=S:d=2,psla:attention=dense-psla:setting=S:d=2
RECOGNITION_DEMO := synthaction:train_videos=96:val_videos=48:frames=8:height=96:width=96
TABLE5 := adafocus:policy=random,adafocus:policy=central,adafocus:policy=gaussian,adafocus:reward=confidence,adafocus:reward=increments,adafocus:reuse_global=false
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup demo demo-segmentation demo-segmentation-full demo-detection demo-detection-full demo-recognition demo-recognition-full test regress report motion clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

demo: demo-segmentation demo-detection demo-recognition

demo-segmentation: setup
	$(BENCH) compare --methods frame,prop-flow,prop-mv,interp-mv --dataset synthcity \
		--intervals 1,2,5,10 --speed-videos 2 --speed-rounds 3

# the seed's full table: every interval 1-10, speed over 4 videos x 5 rounds (about 12 min)
demo-segmentation-full: setup
	$(BENCH) compare --methods frame,prop-flow,prop-mv,interp-mv --dataset synthcity --intervals 1-10

demo-detection: setup
	$(BENCH) compare --task detection --methods rfcn,dff,psla \
		--intervals 10 --speed-videos 2 --speed-rounds 3

# seed 001's ablations (Tables 3-5): every attention kind, S and F, d = 2 and 4; DFF vs PSLA (a)
# up to l = 35. About 25 minutes on 2 cores; re-uses what demo-detection trained and measured.
demo-detection-full: demo-detection
	$(BENCH) compare --task detection --intervals 1,10 --speed-videos 2 --speed-rounds 3 \
		--methods dff,psla,psla:setting=a,psla:setting=b,$(ABLATIONS)
	$(BENCH) compare --task detection --methods dff,psla:setting=a \
		--intervals 15,25,35 --speed-videos 2 --speed-rounds 3

# seed 002 on a small synthaction (8 frames at 96x96): learned policy vs random, AdaFocus+, TSM+
# against AdaFocus-TSM (the stream/offline ratios); the full-size run is demo-recognition-full.
demo-recognition: setup
	$(BENCH) compare --task recognition --dataset $(RECOGNITION_DEMO) \
		--methods adafocus,tsm+,adafocus-tsm --speed-videos 4 --speed-rounds 3
	$(BENCH) focus --dataset $(RECOGNITION_DEMO) --methods adafocus

# seed 002 at the default synthaction size (160 train / 80 val videos of 16 frames at 112x112):
# Tables 3-5 and Fig. 6 rows. Hours on 2 cores; minutes on a GPU.
demo-recognition-full: setup
	$(BENCH) compare --task recognition --speed-videos 4 --speed-rounds 3 --methods \
		adafocus,adafocus+:eta=0.9,adafocus+:eta=0.7,adafocus+:eta=0.5,$(TABLE5),tsm,tsm+,adafocus-tsm,r50-avg,r50-gru

report: setup
	$(BENCH) report --dataset synthcity
	$(BENCH) report --dataset synthdet
	$(BENCH) report --dataset synthaction

motion: setup
	$(BENCH) motion --dataset synthcity

test: setup
	$(PY) -m pytest -q

regress: setup
	$(BENCH) regress

clean:
	rm -rf data checkpoints results/runs reports/synthcity reports/synthdet reports/synthaction reports/motion
