# The project's single entry points. Everything they need is installed by scripts/dev.sh.
.PHONY: run test stop lint bench bootstrap services

DEV := scripts/dev.sh

bootstrap:
	@$(DEV) bootstrap

services: bootstrap
	@$(DEV) services

run: services
	@$(DEV) run

test: services
	@$(DEV) exec python -m pytest $(PYTEST_ARGS)

stop:
	@$(DEV) stop

lint: bootstrap
	@$(DEV) exec ruff check .
	@$(DEV) exec ruff format --check .
	@$(DEV) exec mypy

bench: services
	@$(DEV) exec python -m bench
