//! Finding the input images of a command and naming its outputs. Reading,
//! decoding, encoding and writing are `som_core::io`'s.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// `dir/<stem><suffix>` for an input image path.
pub fn derived_path(input: &Path, dir: Option<&Path>, suffix: &str) -> PathBuf {
    let stem = input.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
    let name = format!("{stem}{suffix}");
    match dir {
        Some(d) => d.join(name),
        None => PathBuf::from(name),
    }
}

/// The image files named by `paths`: files as given, folders expanded to the
/// `.png`/`.jpg`/`.jpeg` files directly inside them, sorted by name.
pub fn expand_images(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read folder {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && is_image_name(f))
                .collect();
            found.sort();
            if found.is_empty() {
                anyhow::bail!("{}: no .png, .jpg or .jpeg files in this folder", p.display());
            }
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn is_image_name(p: &Path) -> bool {
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
}
