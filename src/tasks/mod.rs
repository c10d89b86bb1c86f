//! Benchmark tasks.
