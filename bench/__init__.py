"""Quality and performance benchmarks (DESIGN.md section 10); `python -m bench --help`."""
