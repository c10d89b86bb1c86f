//! Array and model files.
