# The two set-up commands of the README, plus the slower suites CI runs separately.
.PHONY: run test test-slow test-all bench docs

run:
	./scripts/run.sh

test:
	./scripts/bootstrap.sh test
	.venv/bin/pytest -n auto

test-slow:
	./scripts/bootstrap.sh test
	.venv/bin/pytest -m slow

test-all: test test-slow

docs:
	./scripts/bootstrap.sh
	.venv/bin/python -m shared.settings_doc > docs/settings.md

bench:
	./scripts/bootstrap.sh test
	.venv/bin/python -m bench.throughput
