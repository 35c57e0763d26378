# helixflow - everything a fresh Debian 12 machine needs is installed from here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
SAM_VERSION := 1.170.0
# Peers for correctness tests and benchmarks, the Illumina read simulator, the reference data, and the local
# Slurm (slurmctld, slurmd, slurmrestd with JWT, munge) that Phase 2 jobs run on.
APT_PACKAGES := fastp samtools bwa minimap2 art-nextgen-simulation-tools bowtie2-examples \
  slurm-wlm slurmrestd slurm-wlm-jwt-plugin munge
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
export SAM_CLI_TELEMETRY := 0

.PHONY: install install-system demo test test-all lint clean

install: install-system $(STAMP) $(SAM_VENV)/bin/sam

install-system:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $$( [ $$(id -u) -eq 0 ] || echo sudo ) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$( [ $$(id -u) -eq 0 ] || echo sudo ) apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[all]'
	# Every Numba kernel compiled now, not on the first run (helixflow.warmup).
	$(VENV)/bin/python -m helixflow.warmup
	rm -f $(VENV)/.installed-* && touch $@

# aws-sam-cli lives in its own environment, as AWS ships it: it pins boto3/click/pydantic.
$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --upgrade pip
	$(SAM_VENV)/bin/pip install -q aws-sam-cli==$(SAM_VERSION)

demo: install
	$(VENV)/bin/helixflow demo

# The default test run (CI runs this through .ci/run).
test: install
	$(VENV)/bin/python -m pytest -q -n 2 --durations=10

lint: install
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM_VENV)/bin/sam validate --lint --region us-east-1
	$(VENV)/bin/python -m pytest -q tests/unit/test_template.py

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam helixflow-demo helixflow-results
