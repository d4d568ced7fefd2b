//! Fixture loading shared by the benchmarks.
