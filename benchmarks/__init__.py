"""Speed, memory and loader benchmarks; the command line is benchmarks/benchmark.py."""
