//! The process's allocator settings for LibTorch on CPU.

/// Lets glibc keep memory that LibTorch frees instead of handing it back to the kernel at
/// once; call it once at the start of a program that runs the torch models.
///
/// LibTorch allocates a fresh tensor for every operation and frees it soon after. With
/// glibc's defaults, blocks of many megabytes are mapped and unmapped (or trimmed off the
/// heap) each time, and every page of the next one is faulted in and zeroed again: in SAM's
/// automatic mask generator (thousands of prompts through the mask decoder) that was a
/// fifth of the run. This raises the threshold above which blocks are mapped apart to
/// glibc's maximum (32 MiB), keeps up to 1 GiB of free memory at the top of the heap and
/// pads heap growth by 256 MiB; MobileSAM's generator on a 1280×720 photo went from 41–46 s
/// to 36–37 s here, with the same records. The price is that the process keeps that much
/// freed memory mapped. A library should leave the choice to the program, so nothing in
/// this crate calls it; the `som` binary does.
///
/// Returns whether the allocator took the settings: `true` with glibc on Linux, `false`
/// elsewhere (where it does nothing).
///
/// ```
/// let tuned = som_segment::torch::retain_freed_memory();
/// assert_eq!(tuned, cfg!(all(target_os = "linux", target_env = "gnu")));
/// ```
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::raw::c_int;
        extern "C" {
            fn mallopt(param: c_int, value: c_int) -> c_int;
        }
        // glibc's malloc.h.
        const M_TRIM_THRESHOLD: c_int = -1;
        const M_TOP_PAD: c_int = -2;
        const M_MMAP_THRESHOLD: c_int = -3;
        // SAFETY: mallopt only changes glibc's malloc parameters (under its own lock) and
        // returns 0 for a value it refuses; it touches no memory of ours.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1
                && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1
                && mallopt(M_TOP_PAD, 256 << 20) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
