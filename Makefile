# Set-up is idempotent: the virtual environment is (re)built only when pyproject.toml changes.
VENV   := .venv
PY     := $(VENV)/bin/python
BENCH  := $(VENV)/bin/bench
ABLATIONS := psla:attention=matchtrans:setting=S,psla:attention=matchtrans:setting=F,psla:attention=dense-psla:setting=S,psla:attention=dense-psla:setting=F,psla:attention=nonlocal:setting=S,psla:attention=nonlocal:setting=F,psla:setting=a:d=2,psla:attention=matchtrans:setting=S:d=2,psla:attention=dense-psla:setting=S:d=2
RECOGNITION_DEMO := synthaction:train_videos=1500:val_videos=200:frames=12:height=64:width=64:min_area=0.1:max_area=0.16:train_flip=true
TABLE5 := adafocus:policy=random,adafocus:policy=central,adafocus:policy=gaussian,adafocus:reward=confidence,adafocus:reward=increments,adafocus:reuse_global=false
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

SEED_NET := layers=3-4-23-3:width=64:expansion=4:deformable=true:recipe=paper
.PHONY: speed-paper speed-paper-gpu reproduce-cityscapes reproduce-camvid reproduce-synthcity-paper-scale setup demo demo-segmentation demo-segmentation-full demo-detection demo-detection-full demo-detection-seeds demo-detection-fig6 demo-recognition demo-recognition-tables demo-recognition-seeds demo-recognition-full test regress report motion clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

demo: demo-segmentation demo-detection demo-recognition

# make demo: the three tasks at the small preset (the CI gate's training budgets on small
# synthetic worlds), 23 minutes on 2 idle cores from a fresh clone with the set-up (README);
# the *-full targets run the default worlds and budgets behind the README's synthetic findings
demo-segmentation: setup
	$(BENCH) compare --preset small --methods frame,prop-flow,prop-mv,interp-mv \
		--dataset synthcity --intervals 1,2,5,10 --speed-videos 2 --speed-rounds 3

# the seed's full table: every interval 1-10, speed over 4 videos x 5 rounds (about 12 min)
demo-segmentation-full: setup
	$(BENCH) compare --methods frame,prop-flow,prop-mv,interp-mv --dataset synthcity --intervals 1-10

demo-detection: setup
	$(BENCH) compare --preset small --task detection --methods rfcn,dff,psla \
		--intervals 10 --speed-videos 2 --speed-rounds 3

# seed 001 at synthdet's default size: R-FCN, DFF and PSLA, and the ablations (Tables 3-5):
# every attention kind, S and F, d = 2 and 4; DFF vs PSLA (a) up to l = 35, each trained at the
# l it is evaluated at (the paper's key sampling scales with l). About 30 minutes on 2 cores.
demo-detection-full: setup
	$(BENCH) compare --task detection --methods rfcn,dff,psla \
		--intervals 10 --speed-videos 2 --speed-rounds 3
	$(BENCH) compare --task detection --intervals 1,10 --speed-videos 2 --speed-rounds 3 \
		--methods dff,psla,psla:setting=a,psla:setting=b,$(ABLATIONS)
	$(foreach l,15 25 35,$(BENCH) compare --task detection --intervals $(l) \
		--methods dff:train_interval=$(l),psla:setting=a:train_interval=$(l) \
		--speed-videos 2 --speed-rounds 3 &&) true

# seed 001's main rows (R-FCN, DFF, PSLA (a), (b), (c)) and Table 3's S rows (MatchTrans,
# DensePSLA, Nonlocal) at training seeds 1 and 2, l = 10: PSLA's spread over seeds is larger than
# its configurations' differences (README), so seed 0's rows (demo-detection-full) need these
# beside them; then `bench report --seeds` sets them side by side
DETECTION_SEEDS := 1 2
TABLE3_S := psla:attention=matchtrans:setting=S,psla:attention=dense-psla:setting=S,psla:attention=nonlocal:setting=S
demo-detection-seeds: setup
	for seed in $(DETECTION_SEEDS); do \
		$(BENCH) compare --task detection --seed $$seed --intervals 10 \
			--speed-videos 1 --speed-rounds 1 \
			--methods rfcn,dff,psla,psla:setting=a,psla:setting=b,$(TABLE3_S) || exit 1; \
	done
	$(BENCH) report --dataset synthdet --seeds 0-2

# seed 001 Fig. 6: PSLA (a), (c), MatchTrans S and DensePSLA S at d = 2..5 and Nonlocal S, each at
# l = 5, 10, 20; one panel per d in reports/synthdet/detection_fig6.png (about 25 min on 2 cores).
comma := ,
space := $(subst ,, )
FIG6 := $(foreach d,2 3 4 5,psla:setting=a:d=$(d) psla:d=$(d) psla:attention=matchtrans:setting=S:d=$(d) \
	psla:attention=dense-psla:setting=S:d=$(d)) psla:attention=nonlocal:setting=S
demo-detection-fig6: setup
	$(BENCH) compare --task detection --intervals 5,10,20 --speed-videos 1 --speed-rounds 2 \
		--methods $(subst $(space),$(comma),$(strip $(FIG6)))

# seed 002 on the small synthaction (1500 + 200 videos of 12 frames at 64x64, a 10-16 % object,
# random flips; the small preset's scale=mini networks): the per-frame baseline r50-avg, TSM,
# AdaFocus and AdaFocus-TSM (12 distinct focus frames), then where AdaFocus looks (bench focus
# reuses the compare's checkpoint). Sized so that the networks learn (README, "Recognition");
# about 17 min on 2 idle cores (README), AdaFocus's stage I the largest part.
demo-recognition: setup
	$(BENCH) compare --preset small --task recognition --dataset $(RECOGNITION_DEMO) \
		--methods r50-avg,tsm,adafocus,adafocus-tsm --speed-videos 4 --speed-rounds 3
	$(BENCH) focus --dataset $(RECOGNITION_DEMO) --methods adafocus:scale=mini

# seed 002's Tables 3-5 and the AdaFocus+ eta sweep on the demo's synthaction and networks, every
# row at seed 0. Rows share what trains alike: Table 5's learned-policy rows (random patches,
# reward variants) load one stage I, and the eta sweep is one trained AdaFocus+ with rho solved
# per eta (sec. 3.3). demo-recognition-seeds adds seeds 1 and 2 of the rows whose differences
# are a few points (Table 3's TSM rows, Table 4), then `bench report --seeds` sets them side by
# side. Times on 2 idle cores: README, "Recognition (seed 002)".
TABLE3_SMALL := tsm,tsm+,adafocus-tsm,adafocus-tsm:patch=48
TABLE4_SMALL := adafocus,adafocus:reuse_global=false
TABLE5_SMALL := adafocus:reuse_global=false:policy=random,adafocus:reuse_global=false:policy=central,adafocus:reuse_global=false:policy=gaussian,adafocus:reuse_global=false:reward=confidence,adafocus:reuse_global=false:reward=increments
ETA_SMALL := adafocus+:eta=0.9,adafocus+:eta=0.7,adafocus+:eta=0.5
RECOGNITION_SEEDS := 1 2
demo-recognition-tables: setup
	$(BENCH) compare --preset small --task recognition --dataset $(RECOGNITION_DEMO) \
		--speed-videos 1 --speed-rounds 1 \
		--methods $(TABLE3_SMALL),$(TABLE4_SMALL),$(TABLE5_SMALL),$(ETA_SMALL)

demo-recognition-seeds: setup
	for seed in $(RECOGNITION_SEEDS); do \
		$(BENCH) compare --preset small --task recognition --dataset $(RECOGNITION_DEMO) \
			--seed $$seed --speed-videos 1 --speed-rounds 1 \
			--methods tsm,tsm+,adafocus-tsm,$(TABLE4_SMALL) || exit 1; \
	done
	$(BENCH) report --dataset synthaction --seeds 0-2

# seed 002 at the default synthaction size (160 train / 80 val videos of 16 frames at 112x112):
# Tables 3-5 and Fig. 6 rows. Hours on 2 cores; minutes on a GPU.
demo-recognition-full: setup
	$(BENCH) compare --task recognition --speed-videos 4 --speed-rounds 3 --methods \
		adafocus,adafocus+:eta=0.9,adafocus+:eta=0.7,adafocus+:eta=0.5,$(TABLE5),tsm,tsm+,adafocus-tsm,r50-avg,r50-gru

# Seed 000 on the real data at the paper's scale: R101-DCN DeepLab (seed sec. 3.1), the paper's
# SGD recipe, intervals 1-10, Table 1 / Table 3 with the paper beside. Needs the data
# (CITYSCAPES_ROOT / CAMVID_ROOT or data/cityscapes, data/camvid), ImageNet weights
# (IMAGENET_WEIGHTS=resnet101-*.pth) or an mmseg checkpoint (MMSEG_WEIGHTS=..., deep stem),
# and a FlowNetS checkpoint for prop-flow (FLOWNET_WEIGHTS=...); a GPU when there is one.
DEVICE ?= $(shell $(PY) -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)
WEIGHTS := $(if $(MMSEG_WEIGHTS),:stem=deep:mmseg_weights=$(MMSEG_WEIGHTS),$(if $(IMAGENET_WEIGHTS),:imagenet_weights=$(IMAGENET_WEIGHTS)))
# prop-flow first: it refuses a dataset without ground-truth flow and no FlowNetS before training
seed_methods = prop-flow:$(1)$(if $(FLOWNET_WEIGHTS),:flownet_weights=$(FLOWNET_WEIGHTS)),frame:$(1),prop-mv:$(1),interp-mv:$(1)
REPRODUCE = $(BENCH) compare --device $(DEVICE) --intervals 1-10 --speed-videos 4 --speed-rounds 5

reproduce-cityscapes: setup
	$(REPRODUCE) --methods $(call seed_methods,$(SEED_NET)$(WEIGHTS)) --dataset cityscapes

# CamVid at the paper's 960x720 (twice the SegNet labels' 480x360), scored on the 233 test stills
reproduce-camvid: setup
	$(REPRODUCE) --methods $(call seed_methods,$(SEED_NET)$(WEIGHTS)) --dataset camvid:scale=2

# The same command on synthcity (ground-truth flow: prop-flow needs no FlowNetS file). Slow on a
# CPU; shrink it with e.g. SYNTHCITY=synthcity:train_videos=4:val_videos=8 EPOCHS=1.
SYNTHCITY ?= synthcity
EPOCHS ?= 50
reproduce-synthcity-paper-scale: setup
	$(REPRODUCE) --methods $(call seed_methods,$(SEED_NET):train_epochs=$(EPOCHS)$(WEIGHTS)) \
		--dataset $(SYNTHCITY) \
		--reports reports/synthcity-paper-scale --results results/runs/synthcity-paper-scale.jsonl

# The papers' speed claims at the papers' network and input sizes (untrained-size weights: speed
# only), records in results/runs/paper-speed.jsonl, table in reports/paper-speed/paper_speed.md.
# The cpu plan fits about 20 minutes on 2 cores; the gpu target runs the full plan on one GPU.
speed-paper: setup
	$(BENCH) speed --scale paper --plan cpu

speed-paper-gpu: setup
	$(BENCH) speed --scale paper --plan full --device cuda \
		--results results/runs/paper-speed-gpu.jsonl --reports reports/paper-speed-gpu

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
