//! f64 CPU reference of fmpe's numerics (used by the test suite).
