.PHONY: setup demo lint test bench clean

setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/vidpipe demo

lint: setup
	.venv/bin/ruff check .

test: setup
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python bench/bench_ingest.py
	.venv/bin/python bench/bench_ingest.py --backbone efficientnet_lite0
	.venv/bin/python bench/bench_evaluate.py
	.venv/bin/python bench/bench_train.py
	.venv/bin/python bench/bench_predict.py

clean:
	rm -rf .vidpipe .pytest_cache
