# The two commands: `make run` (the whole system) and `make test` (the whole suite).
# Both install what is missing first: a .venv with the pinned requirements,
# and the page's node_modules and build when their sources changed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FRONTEND_SOURCES := $(shell find frontend/src frontend/index.html frontend/package.json \
	frontend/vite.config.ts frontend/tsconfig*.json -type f 2>/dev/null)

.PHONY: run test install frontend lint pytest frontend-test bench bench-smoke clean

run: install frontend
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0
	@if [ -n "$$DJANGO_SUPERUSER_USERNAME" ] && [ -n "$$DJANGO_SUPERUSER_PASSWORD" ]; then \
		$(PY) manage.py createsuperuser --noinput --email "$${DJANGO_SUPERUSER_EMAIL:-admin@localhost}" \
			2>/dev/null && echo "Created admin user $$DJANGO_SUPERUSER_USERNAME" || true; fi
	$(PY) manage.py serve

test: install frontend lint frontend-test pytest

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

frontend: frontend/dist/index.html

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

frontend/dist/index.html: frontend/node_modules/.package-lock.json $(FRONTEND_SOURCES)
	cd frontend && npm run build

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The page's API types must match the schema the server publishes (regenerate: cd frontend && npm run api-types).
frontend-test: install frontend
	cd frontend && npm run lint && npm test && npm run check-api-types

# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
pytest: install frontend
	scripts/ensure-chromium
	$(VENV)/bin/pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "No tests were collected." >&2; exit 1; fi; exit $$status

bench: install frontend
	$(PY) bench/run.py

bench-smoke: install frontend
	$(PY) bench/run.py --smoke

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist
