//! Regions JSON and marks JSON.
