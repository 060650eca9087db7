# latentaudio: every target installs what it needs first, so any of them works on a fresh clone.
# Training and tool targets pass Hydra overrides through ARGS, e.g. make train-vae ARGS="trainer.max_steps=100".

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install test test-all lint format demo demo-data demo-speech demo-speech-data speech-data train-vae reconstruct \
	encode-dataset train-diffusion finetune demo-finetune distill merge-lora import-sat export-sat generate demo-enhance \
	realtime-factor evaluate bench bench-peer throughput stress clean

help: ## List every target with what it does (coloured only on a terminal)
	@if [ -t 1 ]; then on='\033[36m'; off='\033[0m'; else on=; off=; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %s%-16s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,text,sweep,slurm,speech]"
	touch $(STAMP)

install: $(STAMP) ## Create .venv; install latentaudio editable with dev tools and every extra the tests use (no-op when up to date)

test: $(STAMP) ## Run the fast test suite (under 10 minutes on 2 CPU cores)
	$(PY) -m pytest -q

test-all: $(STAMP) ## Run every test, the slow ones too
	$(PY) -m pytest -q -m "not gpu"

lint: $(STAMP) ## Check code style with ruff
	$(PY) -m ruff check latentaudio tests experiments
	$(PY) -m ruff format --check latentaudio tests experiments

format: $(STAMP) ## Reformat the code with ruff
	$(PY) -m ruff check --fix latentaudio tests experiments
	$(PY) -m ruff format latentaudio tests experiments

demo-data: $(STAMP) ## Write the procedural demo dataset to data/demo (deterministic)
	$(PY) -m latentaudio.apps.demo_data $(ARGS)

SPEECH := outputs/demo-speech
# the speech demo's figures were measured on the demo VAE before its spectral channels (2026-12-06); kept until measured on them
SPEECH_VAE := vae.latent_dim=32 vae.spectral_channels=0 vae.noise_bands=0 loss.detail_dropout=0.0 data.batch_size=8
demo-speech: $(STAMP) ## Speech demo: eSpeak corpus, a VAE and a phoneme DiT trained on it, held-out sentences spoken (about 22 min on 2 fast cores, 35-40 on a slow hour)
	$(PY) -m latentaudio.apps.demo_speech_data
	$(PY) -m latentaudio.apps.train_vae experiment=demo_vae $(SPEECH_VAE) data.root=data/demo-speech/train hydra.run.dir=$(SPEECH)/vae ckpt_path=last
	$(PY) -m latentaudio.apps.train_diffusion experiment=demo_speech vae=$(SPEECH)/vae/export hydra.run.dir=$(SPEECH)/dit ckpt_path=last
	$(PY) -m latentaudio.apps.generate vae=$(SPEECH)/vae/export dit=$(SPEECH)/dit/export mode=speak n=1 \
		text_file=data/demo-speech/heldout.txt output=$(SPEECH)/generated hydra.run.dir=$(SPEECH)/generated
	@echo "speech bundles: $(SPEECH)/vae/export $(SPEECH)/dit/export; held-out sentences spoken: $(SPEECH)/generated"

demo-speech-data: $(STAMP) ## Speak the procedural speech demo corpus with eSpeak NG into data/demo-speech (deterministic, seconds)
	$(PY) -m latentaudio.apps.demo_speech_data $(ARGS)

speech-data: $(STAMP) ## List an LJSpeech or LibriTTS corpus in our metadata.csv (ARGS="layout=ljspeech source=... output=...")
	$(PY) -m latentaudio.apps.speech_data $(ARGS)

DEMO := outputs/demo
demo: $(STAMP) ## Demo data, a tiny VAE and DiT trained on it, generated clips in outputs/demo (about 18 min on 2 cores)
	$(PY) -m latentaudio.apps.demo_data
	$(PY) -m latentaudio.apps.train_vae experiment=demo_vae hydra.run.dir=$(DEMO)/vae ckpt_path=last
	$(PY) -m latentaudio.apps.train_diffusion experiment=demo_dit vae=$(DEMO)/vae/export hydra.run.dir=$(DEMO)/dit ckpt_path=last
	$(PY) -m latentaudio.apps.generate vae=$(DEMO)/vae/export dit=$(DEMO)/dit/export n=5 seconds=4 \
		output=$(DEMO)/generated hydra.run.dir=$(DEMO)/generated
	@echo "demo bundles: $(DEMO)/vae/export $(DEMO)/dit/export; clips and spectrograms: $(DEMO)/generated"

train-vae: $(STAMP) ## Train the stage-one VAE (ARGS="experiment=demo_vae data.root=...")
	$(PY) -m latentaudio.apps.train_vae $(ARGS)

reconstruct: $(STAMP) ## make evaluate that also writes each reconstruction as a .wav (ARGS="vae=... data.root=<folder or file>")
	$(PY) -m latentaudio.apps.evaluate write_reconstructions=true $(ARGS)

encode-dataset: $(STAMP) ## Encode an audio folder to latent shards (ARGS="vae=... data.root=... output=...")
	$(PY) -m latentaudio.apps.encode_dataset $(ARGS)

train-diffusion: $(STAMP) ## Train the stage-two DiT (ARGS="experiment=demo_dit vae=...")
	$(PY) -m latentaudio.apps.train_diffusion $(ARGS)

finetune: $(STAMP) ## Fine-tune a DiT bundle with LoRA adapters (ARGS="dit=... vae=... data.root=... lora.rank=16")
	$(PY) -m latentaudio.apps.train_diffusion --config-name finetune $(ARGS)

demo-finetune: $(STAMP) ## After make demo: teach the demo DiT an instrument it never heard (marimba) with LoRA (2 to 4 min)
	$(PY) -m latentaudio.apps.demo_data output=data/demo-marimba classes=[marimba] n_clips=64
	$(PY) -m latentaudio.apps.train_diffusion --config-name finetune experiment=demo_finetune \
		dit=$(DEMO)/dit/export vae=$(DEMO)/vae/export hydra.run.dir=$(DEMO)/finetune ckpt_path=last
	$(PY) -m latentaudio.apps.generate vae=$(DEMO)/vae/export dit=$(DEMO)/dit/export lora=$(DEMO)/finetune/export \
		label=marimba n=4 output=$(DEMO)/finetune/generated hydra.run.dir=$(DEMO)/finetune/generated
	@echo "adapter: $(DEMO)/finetune/export; marimba clips: $(DEMO)/finetune/generated"

distill: $(STAMP) ## Few-step post-training of a DiT bundle (ARGS="dit=... vae=... data.root=<its training audio>")
	$(PY) -m latentaudio.apps.train_diffusion --config-name distill $(ARGS)

merge-lora: $(STAMP) ## Write a DiT bundle with adapters merged in (ARGS="dit=... lora=<adapter> lora_scale=1 output=...")
	$(PY) -m latentaudio.apps.merge_lora $(ARGS)

import-sat: $(STAMP) ## Import a Stable Audio Open checkpoint as VAE and DiT bundles (ARGS="checkpoint=... config=model_config.json output=...")
	$(PY) -m latentaudio.apps.import_sat $(ARGS)

export-sat: $(STAMP) ## Write VAE (and DiT) bundles as stable-audio-tools files (ARGS="vae=... [dit=...] output=...")
	$(PY) -m latentaudio.apps.export_sat $(ARGS)

generate: $(STAMP) ## Generate or edit audio (ARGS="vae=... dit=... mode=generate|vary|inpaint|extend|enhance ...")
	$(PY) -m latentaudio.apps.generate $(ARGS)

demo-enhance: $(STAMP) ## Train the demo enhancement DiT on the demo VAE's latents (outputs/demo/dit_enhance, 12-19 min)
	$(PY) -m latentaudio.apps.train_diffusion experiment=demo_dit_enhance vae=$(DEMO)/vae/export hydra.run.dir=$(DEMO)/dit_enhance ckpt_path=last

realtime-factor: $(STAMP) ## Time every sampler on the demo bundles; writes experiments/inference/results.md
	$(PY) -m experiments.inference.realtime_factor vae=$(DEMO)/vae/export dit=$(DEMO)/dit/export $(ARGS)

evaluate: $(STAMP) ## Metrics of bundles on audio, + generation metrics with dit= (ARGS="vae=... data.root=..."; embedding= runs that file's code, so it needs trust_embedding=true)
	$(PY) -m latentaudio.apps.evaluate $(ARGS)

bench: $(STAMP) ## Print throughput and metric figures of the demo-size models, to compare before/after a change
	$(PY) -m experiments.bench $(ARGS)

bench-peer: $(STAMP) ## Benchmark against stable-audio-tools (installs it in experiments/benchmarks/.venv-peer; about 6 min)
	$(PY) -m experiments.benchmarks.peer $(ARGS)

throughput: $(STAMP) ## Measure training throughput of both demo stages (fp32/bf16, eager/compile)
	$(PY) -m experiments.throughput.run $(ARGS)

stress: $(STAMP) ## Train a tiny VAE on broken files, SIGKILL and resume it twice, report what survived (~1 min)
	PYTHONPATH=tests$${PYTHONPATH:+:$$PYTHONPATH} $(PY) -m harness.stress $(ARGS)

clean: ## Remove the virtual environment, caches, outputs and demo data
	rm -rf $(VENV) outputs data/demo data/demo-speech .pytest_cache .ruff_cache experiments/benchmarks/.venv-peer
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
