# The two commands of the README: `make run` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PIP    := $(VENV)/bin/pip
SD     := $(VENV)/bin/servicedesk
PORT   ?= 5000

.PHONY: run test install install-test services system-packages bench-api bench-sla-sweep bench-sla-lateness bench-ldap bench-cmdb bench-reports messages clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

install: $(VENV)/.installed

$(VENV)/.installed-test: $(VENV)/.installed tests/plugins/recorder/pyproject.toml
	$(PIP) install -q -e '.[test]' -e tests/plugins/recorder
	touch $@

install-test: $(VENV)/.installed-test

# The embedded default: SQLite in the instance folder, jobs in-process, plain HTTP on
# loopback (so the session cookie may not demand HTTPS here; production keeps it on).
run: install
	$(SD) db upgrade
	$(SD) demo
	SERVICEDESK_COOKIE_SECURE=false $(SD) run --port $(PORT)

services:
	.ci/ensure-services

system-packages:
	.ci/ensure-system-packages

# Two processes (pytest-xdist), one test file each at a time: the suite is mostly
# CPU-bound Python and must stay under 10 minutes on a 2-core machine.
PYTEST_WORKERS ?= 2

test: install-test system-packages services
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile

# Printed figures, not a test: e.g. make bench-api BENCH_ARGS="--db both --incidents 2000"
bench-api: install-test services
	$(VENV)/bin/python bench/api_load.py $(BENCH_ARGS)

# SLA escalation (PostgreSQL + Redis on loopback): one sweep over 1,000,000 open
# tickets with 1 % due, and the lateness of 1,000 instants due within a minute.
bench-sla-sweep: install-test services
	$(VENV)/bin/python bench/sla_sweep.py $(BENCH_ARGS)

bench-sla-lateness: install-test services
	$(VENV)/bin/python bench/sla_lateness.py $(BENCH_ARGS)

# Directory sync against a generated slapd: e.g. make bench-ldap BENCH_ARGS="--db both"
bench-ldap: install-test system-packages services
	$(VENV)/bin/python bench/ldap_sync.py $(BENCH_ARGS)

# CMDB on PostgreSQL: impact queries over 100,000 CIs / 300,000 relations, import rows/s.
bench-cmdb: install-test services
	$(VENV)/bin/python bench/cmdb_impact.py $(BENCH_ARGS)

# Reports on PostgreSQL: every report over 1,000,000 tickets (COPY-loaded), target < 2 s.
bench-reports: install-test services
	$(VENV)/bin/python bench/reports.py $(BENCH_ARGS)

# The catalogue translators start from (Persian, Russian, Hebrew come as .po files).
messages: install
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -o servicedesk/translations/messages.pot servicedesk cmdb

clean:
	rm -rf $(VENV) instance *.egg-info
