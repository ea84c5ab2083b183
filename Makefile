# workerprobe. `make install` once, then `make test`. Every target uses .venv/.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest

.PHONY: image-wheels action-check wheel-check install test test-deep test-unit report load selftest arm64-check image lint emulator gateway bench bench-gateway bench-accuracy bench-free-plan bench-foreign bench-loadgen chaos chaos-short clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; } && \
	  echo "installed Debian's chromium (the report pages are checked in it)"; } || \
	  echo "chromium is not installed (not root, or no apt-get): the report pages' browser test will not run"
	touch $@

# Extra options, e.g. make test TEST_ARGS="--max-neurons 100" PYTEST_ARGS="-x"
TEST_ARGS ?=
PYTEST_ARGS ?=

# The suite against the target of .env. With the embedded default, the project's own tests too
# (the load-timing ones after the rest, on their own). Exit 0 every MUST holds, 1 a MUST fails,
# 2 could not verify (GNU make reports any of them as its own exit 2; the verdict line says which).
test: install
	$(VENV)/bin/workerprobe test --project-tests $(TEST_ARGS) -- $(PYTEST_ARGS)

# The contract tests with more than 10 times the generated cases of `make test`.
test-deep: install
	$(VENV)/bin/workerprobe test --depth deep $(TEST_ARGS) -- $(PYTEST_ARGS)

# The HTML report of the last run (Allure 3 from npm: needs Node.js and npm, no Java), served on
# 127.0.0.1 with the last load run's page: the addresses are printed.
report: install
	$(VENV)/bin/workerprobe report

# The suite against each seeded defect of the gateway (reduced depth): every one must be caught.
selftest: install
	WORKERPROBE_TARGET=embedded $(PY) -m workerprobe.suite.selftest --examples 6

# A short load profile against the selected target (.env, or the embedded default), headless.
# Exit 1 when a threshold is broken (by default: more than 1% of requests failed).
LOAD_ARGS ?= --profile step --users 16 --seconds 20 --classes MixUser
load: install
	$(VENV)/bin/workerprobe load $(LOAD_ARGS)

# The gateway on an emulated aarch64 CPU (needs root; builds a Debian arm64 root filesystem
# into .cache/arm64 once): SDK scenario tests against it, throughput beside native.
arm64-check: install
	$(PY) deploy/arm64.py

# The gateway's container image, amd64 and arm64 (under qemu), built and run, and the compose
# stack up with Redis and Prometheus; starts dockerd (as root) where no engine runs. Figures in
# reports/image.json. IMAGE_ARGS="--arch amd64 --no-compose" for less.
IMAGE_ARGS ?=
image: install
	$(PY) deploy/image.py $(IMAGE_ARGS)

# The wheels the Dockerfiles install (build/image/wheels/<arch>/), for a `docker build` by hand.
image-wheels: install
	$(PY) deploy/image.py --wheels-only

# The wheel a user installs: built, installed in a fresh venv outside the repository, and its
# `workerprobe test` run against the embedded default (and the pytest plugin in another project).
wheel-check: install
	$(PY) bench/wheel_check.py

# The GitHub Action (action.yml) as a runner runs it: its script, in a fresh folder, installing the
# suite from this checkout, against the embedded default (and a load run) and a foreign target.
action-check: install
	$(PYTEST) -q tests/ci

test-unit: install
	$(PYTEST) tests/unit

lint: install
	$(VENV)/bin/ruff check src tests bench load deploy conftest.py
	$(VENV)/bin/mypy

emulator: install
	$(VENV)/bin/workerprobe emulator

# With no CF_* upstream set (environment or .env), the gateway starts the emulator itself.
gateway: install
	$(VENV)/bin/workerprobe gateway

bench: install
	$(PY) bench/emulator_bench.py

# Chaos and attacks, loopback only: on the gateway (kill -9 under writers, Redis outage, two
# replicas and a poller, a held SQLite lock, slow clients and bodies, chunked uploads, a malformed
# corpus), and hostile servers (workerprobe.hostile) in front of the gateway and as the target of
# `workerprobe test` and `workerprobe load` (bench/chaos_hostile.py). chaos-short: CI's subset.
chaos: install
	$(PY) bench/chaos.py

chaos-short: install
	$(PY) bench/chaos.py --short

# The gateway beside the emulator itself, a thin pass-through and LiteLLM (its own venv, once);
# BENCH_GATEWAY_ARGS="--servers" adds granian and hypercorn, "--workers 1,2" measures --workers.
BENCH_GATEWAY_ARGS ?=
bench-gateway: install
	$(PY) bench/gateway_bench.py $(BENCH_GATEWAY_ARGS)

# The load profiles' error against the emulator's clock, idle and with both cores busy.
bench-accuracy: install
	$(PY) bench/load_accuracy.py

bench-free-plan: install
	$(PY) bench/free_plan_methods.py

# The suite against servers nobody here wrote (LiteLLM, llama.cpp's server, Cloudflare's /ai/v1,
# public OpenAI-to-Workers-AI Workers under wrangler dev: needs Node.js, npm and git), each foreign
# server in a venv or folder of its own under .cache/ (llama-cpp-python compiles, once).
FOREIGN_ARGS ?= --targets ai-v1 litellm llama-cpp worker:pa4080 worker:chand1012 worker:m0rf30 worker:cng embedded
bench-foreign: install
	$(PY) bench/foreign_targets.py $(FOREIGN_ARGS)

# workerprobe's load profile beside GuideLLM and AIPerf (from PyPI, venvs of their own in
# .cache/bench-loadgen/), judged by the emulator's clock; LOADGEN_ARGS="--rounds 3" for the spread.
LOADGEN_ARGS ?=
bench-loadgen: install
	$(PY) bench/loadgen.py $(LOADGEN_ARGS)

clean:
	rm -rf $(VENV) reports .pytest_cache .mypy_cache .ruff_cache
