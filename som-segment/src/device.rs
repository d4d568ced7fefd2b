//! Where a LibTorch model runs: [`Device`] (`cpu`, `cuda`, `cuda:N`, `mps`, `auto`).
//!
//! Available with the `torch` feature. Every torch model loads onto one
//! (`Sam::load_on`, `MaskDino::load_on`, `Weights::from_file_on`); [`Device::resolve`] checks it against the LibTorch this process runs
//! on, so asking for a GPU that is not there is a [`DeviceError`], never a LibTorch abort,
//! and `auto` falls back to the CPU.
//!
//! The LibTorch that `tools/setup-libtorch.sh` installs is a CUDA build (torch 2.13.0 from
//! PyPI), so on a machine with an NVIDIA driver and the CUDA runtime libraries `cuda` works
//! with the same binary; `mps` needs a macOS LibTorch. GPU runs are not tested in this
//! repository (its CI machines have no GPU): results on a GPU are not bit-identical to the
//! CPU reference (other kernels), and the automatic mask generator's exact shortcuts check
//! that themselves and fall back to LibTorch's upscaling when they cannot reproduce it.
//!
//! ```
//! use som_segment::Device;
//! let d: Device = "cuda:1".parse()?;
//! assert_eq!(d, Device::Cuda(1));
//! assert_eq!(d.to_string(), "cuda:1");
//! assert_eq!(Device::Cpu.resolve()?, tch::Device::Cpu);
//! // `auto` never fails: a GPU when there is one, else the CPU.
//! let device = Device::Auto.resolve()?;
//! println!("running on {device:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

/// A device to run a LibTorch model on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// CUDA GPU number `N` (`cuda` is `cuda:0`).
    Cuda(usize),
    /// Apple's Metal Performance Shaders (a macOS LibTorch).
    Mps,
    /// The first CUDA GPU if there is one, else MPS if there is, else the CPU.
    Auto,
}

/// A device name that does not parse, or a device this LibTorch cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// Not `cpu`, `cuda`, `cuda:N`, `mps` or `auto`.
    #[error("unknown device '{0}' (expected cpu, cuda, cuda:N, mps or auto)")]
    Unknown(String),
    /// The device exists as a name but not here.
    #[error("device {device} is not available: {reason}")]
    Unavailable {
        /// The device asked for.
        device: Device,
        /// Why it cannot be used.
        reason: String,
    },
}

impl FromStr for Device {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, DeviceError> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            "mps" => Ok(Device::Mps),
            "auto" => Ok(Device::Auto),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(Device::Cuda)
                .ok_or_else(|| DeviceError::Unknown(s.to_owned())),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Mps => f.write_str("mps"),
            Device::Auto => f.write_str("auto"),
        }
    }
}

impl Device {
    /// The LibTorch device to use.
    ///
    /// # Errors
    /// [`DeviceError::Unavailable`] for a CUDA GPU that is not there (no driver, no GPU, or
    /// fewer GPUs than `N + 1`) or MPS outside a macOS LibTorch. `Auto` never fails.
    pub fn resolve(self) -> Result<tch::Device, DeviceError> {
        match self {
            Device::Cpu => Ok(tch::Device::Cpu),
            Device::Cuda(n) => {
                let count = if tch::Cuda::is_available() {
                    tch::Cuda::device_count().max(0) as usize
                } else {
                    0
                };
                if n < count {
                    Ok(tch::Device::Cuda(n))
                } else {
                    Err(DeviceError::Unavailable {
                        device: self,
                        reason: if count == 0 {
                            "this LibTorch sees no CUDA GPU (none installed, or no NVIDIA driver)".to_owned()
                        } else {
                            format!("this LibTorch sees {count} CUDA GPU(s), numbered from 0")
                        },
                    })
                }
            }
            Device::Mps => {
                if tch::utils::has_mps() {
                    Ok(tch::Device::Mps)
                } else {
                    Err(DeviceError::Unavailable {
                        device: self,
                        reason: "this LibTorch has no MPS support (it needs a macOS build)".to_owned(),
                    })
                }
            }
            Device::Auto => Ok(self.resolve_or_cpu()),
        }
    }

    /// [`Device::resolve`], with the CPU for a device that is not available (what `auto`
    /// does).
    pub fn resolve_or_cpu(self) -> tch::Device {
        match self {
            Device::Auto => [Device::Cuda(0), Device::Mps]
                .into_iter()
                .find_map(|d| d.resolve().ok())
                .unwrap_or(tch::Device::Cpu),
            d => d.resolve().unwrap_or(tch::Device::Cpu),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in [
            Device::Cpu,
            Device::Cuda(0),
            Device::Cuda(3),
            Device::Mps,
            Device::Auto,
        ] {
            assert_eq!(d.to_string().parse::<Device>().unwrap(), d);
        }
        assert_eq!("CUDA".parse::<Device>().unwrap(), Device::Cuda(0));
        for bad in ["", "cuda:", "cuda:x", "cuda:-1", "tpu", "cpu0"] {
            assert!(
                matches!(bad.parse::<Device>(), Err(DeviceError::Unknown(_))),
                "{bad}"
            );
        }
    }

    /// This machine has no GPU (the CI's neither): `cuda` is a typed error, `auto` is the CPU.
    #[test]
    fn unavailable_devices_are_errors_and_auto_falls_back() {
        if tch::Cuda::is_available() {
            return;
        }
        let e = Device::Cuda(0).resolve().unwrap_err();
        assert!(e.to_string().starts_with("device cuda:0 is not available"), "{e}");
        assert_eq!(Device::Cuda(0).resolve_or_cpu(), tch::Device::Cpu);
        if !tch::utils::has_mps() {
            assert!(Device::Mps.resolve().is_err());
            assert_eq!(Device::Auto.resolve().unwrap(), tch::Device::Cpu);
        }
        assert_eq!(Device::Cpu.resolve().unwrap(), tch::Device::Cpu);
    }
}
