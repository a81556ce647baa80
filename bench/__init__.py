"""Benchmarks and evaluation harnesses (fimls.bench): they print JSON; they are not tests."""
