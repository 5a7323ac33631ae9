# Set-up and the main jobs. `make run` and `make test` work on a fresh machine: they create .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench contract clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[all]"
	./scripts/ensure_chromium.sh
	touch $(STAMP)

install: $(STAMP)

# The main job: the dashboard on its embedded default data (a capacity summary if streamlit_app.py is absent).
run: $(STAMP)
	@if [ -f streamlit_app.py ]; then \
		$(BIN)/streamlit run streamlit_app.py; \
	else \
		$(BIN)/planner summary; \
	fi

# Exit code 5 ("no tests collected") is a failure too: pytest returns it and make stops.
test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/accuracy.py
	$(BIN)/python benchmarks/sweep_speed.py
	$(BIN)/python benchmarks/plan_speed.py
	$(BIN)/python benchmarks/cpu_validation.py

contract: $(STAMP)
	PLANNER=$(BIN)/planner $(BIN)/python ../shared/checks/contract.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
