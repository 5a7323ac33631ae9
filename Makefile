# Set-up and the main jobs. `make run` and `make test` work on a fresh machine: they create .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench contract gpu-wheels clean

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

# Wheels of what the lent GPU machine's image lacks (pydantic and its parts, simpy), for Python 3.12 there,
# into the ignored .whl/ that the device tool carries (benchmarks/gpu_campaign.py says how they are used).
GPU_WHEELS := pydantic==2.14.3 pydantic_core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 \
	typing_extensions==4.16.0 simpy==4.1.2
gpu-wheels:
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl $(GPU_WHEELS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
