# The two commands of the README: `make demo` and `make test`. Both create .venv/ on first use.
PYTHON3 ?= python3
VENV := .venv
BIN := $(VENV)/bin
RAW := $(or $(LEAFNET_RAW),leafnet_raw)
RESULTS := $(or $(LEAFNET_RESULTS),leafnet_results)
DEMO_OUT := $(RESULTS)/demo_predictions
STAMP := $(VENV)/.installed

.PHONY: demo demo-nested demo-fast-decoder test test-unit install clean-venv

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON3) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,bench,onnx]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/leafnet_verify -d 999 2>/dev/null || $(BIN)/leafnet_convert demo --overwrite
	$(BIN)/leafnet_plan_and_preprocess -d 999 --preset small
	$(BIN)/leafnet_train 999 LEAFAutoencoderTrainer_cpu --minutes 1.5 --validate-every 10000 --c
	$(BIN)/leafnet_train 999 LEAFTrainer_x0_cpu --first-stage LEAFAutoencoderTrainer_cpu \
		--minutes 5 --validate-every 100 --c
	$(BIN)/leafnet_predict -d 999 -tr LEAFTrainer_x0_cpu -i $(RAW)/Dataset999_LeafnetDemo/imagesTs \
		-o $(DEMO_OUT) --save_probabilities
	$(BIN)/leafnet_evaluate -ref $(RAW)/Dataset999_LeafnetDemo/labelsTs -pred $(DEMO_OUT) \
		--hd95 --overlays $(DEMO_OUT)/overlays --images $(RAW)/Dataset999_LeafnetDemo/imagesTs
	@echo "demo done. raw data: $(RAW)/Dataset999_LeafnetDemo; model and its validation/test" \
		"summaries: $(RESULTS)/Dataset999_LeafnetDemo/LEAFTrainer_x0_cpu__leafnetPlans__small/fold_0;" \
		"test predictions, summary.json and overlays: $(DEMO_OUT)"

DEMO_FAST_OUT := $(RESULTS)/demo_predictions_fast_decoder

# The fast mask decoder of `make demo`'s model (run `make demo` first): distilled from the frozen
# decoder (it prints the two decoders' agreement on the validation cases), then the test images
# predicted with it and scored, to set beside `make demo`'s scores with the frozen decoder.
demo-fast-decoder: $(STAMP)
	$(BIN)/leafnet_distill_decoder -d 999 -tr LEAFTrainer_x0_cpu -f 0
	$(BIN)/leafnet_predict -d 999 -tr LEAFTrainer_x0_cpu -i $(RAW)/Dataset999_LeafnetDemo/imagesTs \
		-o $(DEMO_FAST_OUT) --fast-decoder --save_probabilities
	$(BIN)/leafnet_evaluate -ref $(RAW)/Dataset999_LeafnetDemo/labelsTs -pred $(DEMO_FAST_OUT) --hd95

NESTED := $(RAW)/Dataset998_LeafnetDemoNested
NESTED_OUT := $(RESULTS)/demo_nested_predictions

# The two-label demo (nested regions lesion and core) in `make demo`'s budget (1.5 + 5 minutes),
# at 128 px (planning's measured-ceiling rule takes 256 px: resizing alone costs the cores 2.5
# points at 128 px, but a step costs 3-4x at 256);
# the diffusion stage trains at t = T-1 with flips only, which learns faster in minutes than
# LEAFTrainer_x0_cpu's full augmentation (docs/results.md, issue 14).
demo-nested: $(STAMP)
	$(BIN)/leafnet_verify -d 998 2>/dev/null || $(BIN)/leafnet_convert demo --num-labels 2 --overwrite
	$(BIN)/leafnet_plan_and_preprocess -d 998 --preset small --target-size 128 128
	$(BIN)/leafnet_train 998 LEAFAutoencoderTrainer_cpu --minutes 1.5 --validate-every 10000 --c
	$(BIN)/leafnet_train 998 LEAFTrainer_x0_tlast --first-stage LEAFAutoencoderTrainer_cpu \
		--minutes 5 --validate-every 100 --c
	$(BIN)/leafnet_predict -d 998 -tr LEAFTrainer_x0_tlast -i $(NESTED)/imagesTs -o $(NESTED_OUT) \
		--save_probabilities
	$(BIN)/leafnet_evaluate -ref $(NESTED)/labelsTs -pred $(NESTED_OUT) \
		-djfile $(NESTED)/dataset.json --hd95 --overlays $(NESTED_OUT)/overlays \
		--images $(NESTED)/imagesTs

test: $(STAMP)
	$(BIN)/python -m pytest

# The unit tier alone (tests/unit: seconds per module), for a quick check while editing.
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

clean-venv:
	rm -rf $(VENV)
