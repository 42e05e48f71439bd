# The project's single entry points. Everything they need is installed by scripts/dev.sh.
.PHONY: run test test-any-day stop lint bench bootstrap services fuzz-api backup

DEV := scripts/dev.sh

bootstrap:
	@$(DEV) bootstrap

services: bootstrap
	@$(DEV) services

run: services
	@$(DEV) run

test: services
	@$(DEV) exec python -m pytest $(PYTEST_ARGS)

# The suite with the clock pinned on a Saturday, a holiday, a working Saturday and at 23:30
# (scripts/any-day.sh); AT=NAME or AT='YYYY-mm-dd HH:MM +08:00' runs one.
test-any-day:
	@scripts/any-day.sh $(if $(AT),"$(AT)")

stop:
	@$(DEV) stop

# Another pgBackRest backup of the local cluster, which make run set up (TYPE=full, diff or incr).
backup: services
	@$(DEV) backup $(TYPE)

lint: bootstrap
	@$(DEV) exec ruff check .
	@$(DEV) exec ruff format --check .
	@$(DEV) exec mypy
	@npx --no-install eslint web/static/js

bench: services
	@$(DEV) exec python -m bench

# schemathesis against the running API, every operation and check (minutes; not part of make test).
fuzz-api: services
	@$(DEV) exec python -m pytest -p no:cacheprovider tests/security/fuzz_api.py $(PYTEST_ARGS)
