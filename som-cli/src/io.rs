//! Reading and writing files with errors that name the file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::{DynamicImage, RgbImage};
use som_core::json::ImageInfo;
use som_core::ImageSize;

/// Decodes an image file (PNG or JPEG) with the library's size limits.
pub fn load_image(path: &Path) -> anyhow::Result<DynamicImage> {
    Ok(som_core::io::load_image(path)?)
}

/// The `image` object for an input file.
pub fn image_info(path: &Path, size: ImageSize) -> ImageInfo {
    let info = ImageInfo::new(size.width, size.height);
    match path.file_name().and_then(|n| n.to_str()) {
        Some(name) => info.with_file_name(name),
        None => info,
    }
}

/// Writes `bytes` to `path`, creating parent folders.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create folder {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Encodes an image as PNG or JPEG by the output path's extension.
pub fn encode_image(image: &RgbImage, path: &Path) -> anyhow::Result<Vec<u8>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    let format = match ext.as_str() {
        "png" => image::ImageFormat::Png,
        "jpg" | "jpeg" => image::ImageFormat::Jpeg,
        other => anyhow::bail!(
            "cannot write {}: unknown image extension {other:?} (use .png, .jpg or .jpeg)",
            path.display()
        ),
    };
    let mut out = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut out), format)
        .with_context(|| format!("cannot encode {}", path.display()))?;
    Ok(out)
}

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
