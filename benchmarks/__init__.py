"""asv benchmarks for numlstm; see docs/performance.md and benchmarks/compare.py."""
