# Developer entry points. `make help` lists them.
#
# Everything runs without Docker: deploy/local/infra.sh starts PostgreSQL, Redis and
# Kafka (KRaft) on loopback, and deploy/local/run.py supervises the services.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
# The targets build on each other in order (sync before tests, infra before run).
.NOTPARALLEL:

INFRA := bash deploy/local/infra.sh
# `uv run --no-sync`: `make sync` has already installed exactly what uv.lock says.
UV_RUN := uv run --no-sync
# Development settings for the tests and `make run` (loopback addresses, local passwords).
LOCAL_ENV := deploy/local/local.env
MYPY_PATHS := libs/chassis/src $(wildcard services/*/src) gateway/src saga/src web/src loadgen/src tests deploy/local deploy/images deploy/compose benchmarks tools deploy/k8s/apply.py

.PHONY: help sync infra-up infra-down infra-status infra-reset observe observe-down observe-status observe-tools browser podman podman-env images bench bench-tools run test chaos fuzz lint fmt k8s-validate k8s-apiserver-build k8s-apiserver-test i18n loadgen inventory walkthrough demo compose-tools compose-test

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

sync: ## install the locked Python environment (.venv) with uv
	@command -v uv >/dev/null || pip install "uv==0.13.9"
	uv sync --all-packages --frozen

infra-up: ## start PostgreSQL, Redis and Kafka (installs them if missing)
	$(INFRA) up

infra-down: ## stop the local infrastructure
	$(INFRA) down

infra-status: ## show whether each piece of infrastructure is up
	$(INFRA) status

infra-reset: ## stop the infrastructure and delete its data
	$(INFRA) reset

# The browser tests (tests/e2e) drive Debian's Chromium through Playwright by its path: no browser
# is downloaded. fonts-nanum gives it Hangul glyphs (without a Korean font every Korean screen
# renders as empty boxes). CHROMIUM_EXECUTABLE points the tests at another Chromium.
CHROMIUM_EXECUTABLE ?= /usr/lib/chromium/chromium
BROWSER_PACKAGES := chromium fonts-nanum

# apt-get install the Debian packages in the shell array `missing`, as root or through sudo;
# `apt-get update` first only when there are no package lists, and once more if the install
# fails on stale lists. $(1) names the target in the messages.
define APT_INSTALL
command -v apt-get >/dev/null || { echo "$(1): apt-get not found; install $${missing[*]} yourself" >&2; exit 1; }; \
if [ "$$(id -u)" -eq 0 ]; then sudo=(); \
elif command -v sudo >/dev/null; then sudo=(sudo); \
else echo "$(1): need root or sudo to run apt-get install $${missing[*]}" >&2; exit 1; fi; \
echo "$(1): installing Debian packages: $${missing[*]}"; \
export DEBIAN_FRONTEND=noninteractive; \
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then "$${sudo[@]}" apt-get update -q; fi; \
"$${sudo[@]}" apt-get install -y -q --no-install-recommends "$${missing[@]}" || \
{ "$${sudo[@]}" apt-get update -q && "$${sudo[@]}" apt-get install -y -q --no-install-recommends "$${missing[@]}"; }
endef

browser: ## install Debian's chromium and a Korean font for the browser tests (only when missing)
	@missing=(); \
	[ -x "$(CHROMIUM_EXECUTABLE)" ] || missing+=(chromium); \
	fc-list :lang=ko 2>/dev/null | grep -q . || missing+=(fonts-nanum); \
	if [ $${#missing[@]} -eq 0 ]; then echo "browser: $(CHROMIUM_EXECUTABLE) and a Korean font are installed"; exit 0; fi; \
	$(call APT_INSTALL,browser); \
	[ -x "$(CHROMIUM_EXECUTABLE)" ] || { echo "browser: $(CHROMIUM_EXECUTABLE) missing after the install; set CHROMIUM_EXECUTABLE" >&2; exit 1; }

# The images build with Docker where `docker info` answers, else with podman (Debian's 4.3 with
# runc; deploy/images/engine.py keeps its configuration and store under .local/containers).
# debootstrap makes the stand-in Python base where no container registry answers.
podman: ## install podman, runc and debootstrap when no Docker engine answers (only when missing)
	@if docker info >/dev/null 2>&1; then echo "podman: docker answers; not needed"; exit 0; fi; \
	missing=(); \
	command -v podman >/dev/null || missing+=(podman); \
	command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing+=(runc); \
	command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap); \
	if [ $${#missing[@]} -eq 0 ]; then echo "podman: podman, runc and debootstrap are installed"; exit 0; fi; \
	$(call APT_INSTALL,podman)

# IMAGE_PREFIX and IMAGE_TAG name the images as docker-compose.yml does; IMAGES_ARGS goes to
# the driver (e.g. "--only board,web", "--engine podman").
IMAGES_ARGS ?=

images: sync podman ## build every image (member board qna saga gateway web loadgen); prints sizes and build times
	PATH="$$PATH:/usr/sbin" .venv/bin/python -m deploy.images.build $(IMAGES_ARGS)

# `eval "$$(make -s podman-env)"` points the shell's podman at this checkout's store, so
# `podman images` and `podman run` see what `make images` built (docs/deploy.md).
podman-env: ## print the exports that point podman at this checkout's image store
	@python3 -m deploy.images.engine env

# `make compose-test` brings docker-compose.yml up whole with Compose v2, built from source
# through the Go module proxy (Go 1.24 or newer; Debian 12's golang is too old, see
# https://go.dev/dl) and cached under .local/compose. With podman, containers find each other
# by name through the CNI dnsname plugin; the Kafka stand-in's jars come through maven.
compose-tools:
	@missing=(); \
	if ! docker info >/dev/null 2>&1; then \
		[ -x /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname); \
		command -v mvn >/dev/null || missing+=(maven); \
	fi; \
	if [ $${#missing[@]} -eq 0 ]; then exit 0; fi; \
	$(call APT_INSTALL,compose-tools)

# pytest straight from .venv, not through `uv run`: without a terminal, uv forwards SIGINT to
# its child on top of the process group's own (astral-sh/uv#13925), and the second one would
# interrupt the tests' clean-up (containers, volumes and networks left behind).
PYTEST := .venv/bin/pytest

compose-test: sync podman compose-tools ## docker-compose.yml up for real (podman or docker), the golden journey through the gateway, then down -v (~6 min; Go needed)
	PATH="$$PATH:/usr/sbin" $(PYTEST) tests/compose -m compose -s $(PYTEST_ARGS)

# `make bench` measures with wrk (a compiled load generator) and runs nginx as the reference
# proxy, both from Debian. BENCH_ARGS passes options on: "--quick" (~3 min), "--only P1,P2",
# "--json bench.json" (docs/performance.md).
BENCH_ARGS ?=

bench-tools:
	@missing=(); \
	command -v wrk >/dev/null || missing+=(wrk); \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light); \
	if [ $${#missing[@]} -eq 0 ]; then exit 0; fi; \
	$(call APT_INSTALL,bench)

bench: sync bench-tools infra-up ## the capacity figures beside their baselines and goals, one table (~5 min; BENCH_ARGS="--quick")
	set -a; source $(LOCAL_ENV); set +a; \
	export MSA_TEST_INFRA=local PATH="$$PATH:/usr/sbin"; \
	.venv/bin/python -m benchmarks.bench $(BENCH_ARGS)

# OBSERVE=1 starts Zipkin and Prometheus first and runs every process exporting its traces
# (what `make observe` does for a `make run` already running).
OBSERVE ?=

run: sync infra-up ## migrate, create topics, run every service and the gateway (Ctrl-C stops; OBSERVE=1: with traces and metrics UIs)
	@if [ -n "$(OBSERVE)" ] && [ "$(OBSERVE)" != 0 ]; then \
		$(INFRA) observe-up && .venv/bin/python deploy/local/run.py observe on; \
	fi
	exec .venv/bin/python deploy/local/run.py

# `make observe` (docs/observability.md): Zipkin (traces) and Prometheus (metrics, alerts) on
# loopback, data under .local/; a running `make run` has its processes rolled one at a time
# so that each exports every trace to Zipkin. `make observe-down` turns that off again.
observe: sync ## Zipkin and Prometheus beside `make run`, every trace exported (UIs: http://127.0.0.1:9411/zipkin/, :9090)
	$(INFRA) observe-up
	.venv/bin/python deploy/local/run.py observe on

observe-status: ## whether Zipkin and Prometheus run, and whether make run's processes export their traces
	$(INFRA) observe-status

observe-down: sync ## stop exporting traces (rolls `make run`'s processes), then stop Zipkin and Prometheus
	.venv/bin/python deploy/local/run.py observe off
	$(INFRA) observe-down

# promtool (in Debian's prometheus package) runs the alerting rules' unit tests in `make test`.
observe-tools:
	@command -v promtool >/dev/null || $(INFRA) prometheus-install

test: sync browser podman compose-tools observe-tools infra-up k8s-validate k8s-apiserver-build ## the whole suite: unit, integration, system, browser (tests/e2e), deploy, images and compose (docker or podman), the manifests on a real API server, and the short fault suite (its own infrastructure)
	set -a; source $(LOCAL_ENV); set +a; \
	export MSA_TEST_INFRA="$${MSA_TEST_INFRA:-local}" CHROMIUM_EXECUTABLE="$(CHROMIUM_EXECUTABLE)"; \
	$(PYTEST) tests $(PYTEST_ARGS)

chaos: sync ## the full fault suite on an instance of its own (SCENARIO=name for one; ~12 min)
	$(UV_RUN) python -m tests.chaos $(SCENARIO)

# The failure walkthroughs (tools/walkthrough) against a running `make run` stack: NAME is one of
# kill-worker, fail-saga-step, stop-kafka, roll-deployment, replay-read-model.
# WALKTHROUGH_ARGS: --check-only (terse, no pauses), --log FILE (the `make run` output, tee'd).
NAME ?=
WALKTHROUGH_ARGS ?=

walkthrough: sync ## one failure walkthrough on the running `make run` stack (NAME=kill-worker ...; PASS or FAIL)
	@[ -n "$(NAME)" ] || { .venv/bin/python -m tools.walkthrough --help; exit 2; }
	.venv/bin/python -m tools.walkthrough "$(NAME)" $(WALKTHROUGH_ARGS)

# The long schema-fuzzing run; `make test` runs a short one (100 cases per target).
FUZZ_CASES ?= 1000
FUZZ_SEED ?= 12
FUZZ_MAX_SECONDS ?= 900

fuzz: sync infra-up ## Schemathesis against every service and the gateway (FUZZ_CASES=1000 per target, FUZZ_SEED=12)
	set -a; source $(LOCAL_ENV); set +a; \
	export MSA_TEST_INFRA="$${MSA_TEST_INFRA:-local}"; \
	$(UV_RUN) python -m tests.system.fuzz --cases $(FUZZ_CASES) --seed $(FUZZ_SEED) --max-seconds $(FUZZ_MAX_SECONDS)

# The load generator for demonstrations (docs/loadgen.md): Locust personas through the gateway's
# public API, RATE requests per second in total, until Ctrl-C, printing Locust's stats every few
# seconds. LOADGEN_ARGS goes to Locust (e.g. --run-time 10m, --csv .local/loadgen/run).
GATEWAY_URL ?= http://127.0.0.1:8000
RATE ?= 5
LOADGEN_ARGS ?=

loadgen: sync ## realistic mixed traffic through the gateway at RATE=5 requests/s until Ctrl-C (GATEWAY_URL, LOADGEN_ARGS)
	exec .venv/bin/loadgen --host "$(GATEWAY_URL)" --rate "$(RATE)" $(LOADGEN_ARGS)

# The scripted tour (tools/demo): against a running `make run` stack (GATEWAY_URL), it signs up
# members, writes posts, questions and answers, runs both sagas and prints where to look; what
# it leaves makes the web front end look alive. DEMO_ARGS="--quiet" prints only the summary.
DEMO_ARGS ?=

demo: sync ## a narrated tour of a running `make run` stack: posts, Q&A, both sagas (GATEWAY_URL)
	exec .venv/bin/python -m tools.demo --gateway "$(GATEWAY_URL)" $(DEMO_ARGS)

lint: sync ## ruff (lint + format check), mypy --strict and the import contracts (lint-imports)
	$(UV_RUN) ruff check .
	$(UV_RUN) ruff format --check .
	$(UV_RUN) mypy $(MYPY_PATHS)
	$(UV_RUN) lint-imports --no-logo

fmt: sync ## format the code and apply ruff's safe fixes
	$(UV_RUN) ruff format .
	$(UV_RUN) ruff check --fix .

k8s-validate: ## render and validate the Kubernetes manifests offline
	@if [ -f deploy/k8s/validate.sh ]; then \
		bash deploy/k8s/validate.sh; \
	else \
		echo "k8s-validate: skipped (deploy/k8s/validate.sh does not exist yet)"; \
	fi

# The manifests on a real API server (docs/deploy.md "Validation"): etcd, kube-apiserver,
# kube-controller-manager and kubectl built from the Go module proxy at the release
# deploy/k8s/apiserver/go.mod pins, cached under .local/k8s (a cold build takes minutes, a
# cached one a second). Without Go the build is skipped and the tests skip with the reason.
k8s-apiserver-build:
	@if [ -x /usr/local/go/bin/go ] || command -v go >/dev/null; then \
		bash deploy/k8s/apiserver/build.sh >/dev/null; \
	else \
		echo "k8s-apiserver-build: skipped (Go is not installed; the k8s-apiserver tests skip)"; \
	fi

# pytest straight from .venv, not through `uv run`: uv forwards Ctrl-C's SIGINT to the child
# that the terminal already sent it, and a second KeyboardInterrupt would land in the stop.
k8s-apiserver-test: sync k8s-apiserver-build ## apply every overlay to a real kube-apiserver + controllers on loopback (admission, re-apply, config and overlay changes)
	.venv/bin/pytest tests/k8s_apiserver -m k8s_apiserver $(PYTEST_ARGS)

# The API and event inventories and the AsyncAPI document (docs/learn/inventory) are generated
# from the code; `make test` fails while the committed ones are stale (tests/unit/inventory).
inventory: sync ## regenerate docs/learn/inventory (API and event inventories, asyncapi.yaml) from the code
	$(UV_RUN) python -m tools.inventory

i18n: sync ## extract the web front end's messages and merge them into its ko/en catalogs (web/src/web/locale)
	$(UV_RUN) pybabel extract -F web/babel.cfg --no-location --sort-output --omit-header -o web/src/web/locale/messages.pot web
	$(UV_RUN) pybabel update -i web/src/web/locale/messages.pot -d web/src/web/locale -D messages --no-fuzzy-matching --ignore-obsolete
