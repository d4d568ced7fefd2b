//! Build script: under the `torch` feature, bakes an rpath to LibTorch into this
//! crate's tests, examples and benches, so they run without `LD_LIBRARY_PATH`.
//!
//! `torch-sys` (a direct dependency under `torch` for exactly this reason) exports the
//! LibTorch library directory it linked against as `DEP_TCH_LIBTORCH_LIB`. Binaries of
//! other crates (e.g. `som`) need the same two lines in their own build script.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
