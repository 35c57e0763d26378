# helixflow - everything a fresh Debian 12 machine needs is installed from here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
SAM_VERSION := 1.170.0
# checkov pins boto3 exactly (1.35.x), which the project's pins cannot share: its own environment, as for sam.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30
# Every CloudFormation template (template.yaml is SAM; the others are plain CloudFormation).
TEMPLATES := template.yaml pipeline.yaml $(wildcard infra/*.yaml)
DOCKERFILES := functions/phase1/Dockerfile batch_jobs/runtime/Dockerfile
# Peers for correctness tests and benchmarks, the Illumina read simulator, the reference data, and the local
# Slurm (slurmctld, slurmd, slurmrestd with JWT, munge) that Phase 2 jobs run on; graphviz lays out the console's
# state graph and chromium is the browser its test drives.
APT_PACKAGES := fastp samtools bwa minimap2 art-nextgen-simulation-tools bowtie2-examples \
  slurm-wlm slurmrestd slurm-wlm-jwt-plugin munge graphviz chromium
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
export SAM_CLI_TELEMETRY := 0

.PHONY: install install-system demo test test-extended lint clean wheel sam-build runtime-image ecr-login \
  ci-test ci-build ci-deploy

install: install-system $(STAMP) $(SAM_VENV)/bin/sam $(CHECKOV_VENV)/bin/checkov

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

$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/pip install -q checkov==$(CHECKOV_VERSION)

# The stack stays up after the demo so its console (URL printed) shows both runs; `helixflow local down` stops it.
demo: install
	$(VENV)/bin/helixflow local up
	$(VENV)/bin/helixflow demo
	@echo "console: $$($(VENV)/bin/helixflow console)  (the local stack keeps running: $(VENV)/bin/helixflow local down)"

# The default test run (under 15 minutes on 2 cores); CI (.ci/run) runs it and then the extended tier.
# --dist loadfile: a test file's module-scoped local stack starts once, on one worker.
test: install
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile --durations=10 -m "not extended"

test-extended: install
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile --durations=10 -m extended

lint: install
	$(VENV)/bin/cfn-lint $(TEMPLATES)
	$(SAM_VENV)/bin/sam validate --lint --region us-east-1
	$(SAM_VENV)/bin/sam validate --lint --region us-east-1 --template infra/catalog.yaml
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation $(addprefix -f ,$(TEMPLATES))
	$(VENV)/bin/hadolint $(DOCKERFILES)
	$(VENV)/bin/python -m pytest -q tests/unit/test_template.py tests/unit/test_infra.py

# ---------------------------------------------------------------- delivery (buildspec.yml runs ci-<step>)
# The wheel of the shipped package alone (layers/helixflow): tools/helixflow_local never ships.
WHEEL_STAGE := build/wheel
wheel:
	rm -rf $(WHEEL_STAGE) dist && mkdir -p $(WHEEL_STAGE)/layers/helixflow dist
	cp pyproject.toml README.md $(WHEEL_STAGE)/
	cp -r layers/helixflow/helixflow $(WHEEL_STAGE)/layers/helixflow/
	$(VENV)/bin/pip wheel -q --no-deps -w dist $(WHEEL_STAGE)

# Needs a container runtime: the Phase 1 functions are images (CodeBuild's privileged mode provides Docker).
sam-build: $(SAM_VENV)/bin/sam
	$(SAM_VENV)/bin/sam build

RUNTIME_IMAGE_REPOSITORY ?= helixflow-runtime
IMAGE_TAG ?= $(or $(CODEBUILD_RESOLVED_SOURCE_VERSION),$(shell git rev-parse --short HEAD 2>/dev/null),dev)
runtime-image: wheel
	docker build -f batch_jobs/runtime/Dockerfile -t $(RUNTIME_IMAGE_REPOSITORY):$(IMAGE_TAG) .

ecr-login:
	aws ecr get-login-password | docker login --username AWS --password-stdin $(firstword $(subst /, ,$(RUNTIME_IMAGE_REPOSITORY)))

ci-test: test test-extended

# The repository's tags are immutable: a rebuilt commit keeps the image it already pushed.
ci-build: install sam-build runtime-image ecr-login
	if aws ecr describe-images --repository-name $(lastword $(subst /, ,$(RUNTIME_IMAGE_REPOSITORY))) \
	  --image-ids imageTag=$(IMAGE_TAG) >/dev/null 2>&1; then echo "runtime image $(IMAGE_TAG) already pushed"; \
	else docker push $(RUNTIME_IMAGE_REPOSITORY):$(IMAGE_TAG); fi

CONFIG_ENV ?= default
ci-deploy: $(SAM_VENV)/bin/sam ecr-login
	$(SAM_VENV)/bin/sam deploy --config-env $(CONFIG_ENV) --no-confirm-changeset --no-fail-on-empty-changeset \
	  --image-repository $(PHASE1_IMAGE_REPOSITORY) --s3-bucket $(SAM_ARTIFACT_BUCKET) --role-arn $(DEPLOY_ROLE_ARN)
	bucket=$$(aws cloudformation describe-stacks --stack-name $$($(SAM_VENV)/bin/python -c \
	  "import sys,tomllib; c=tomllib.load(open('samconfig.toml','rb')); print(c[sys.argv[1]]['global']['parameters']['stack_name'])" \
	  $(CONFIG_ENV)) --query "Stacks[0].Outputs[?OutputKey=='DataBucketName'].OutputValue" --output text) && \
	aws s3 cp dist/ "s3://$$bucket/artifacts/" --recursive && aws s3 cp constraints.txt "s3://$$bucket/artifacts/"

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam build dist helixflow-demo helixflow-results test-artefacts
