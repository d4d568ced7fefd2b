//! som-marks (being built; see ARCHITECTURE.md).
#![deny(missing_docs)]
