//! The process's allocator settings for LibTorch on CPU.

/// Lets glibc keep memory that LibTorch frees instead of handing it back to the kernel at
/// once; call it once at the start of a program that runs the torch models.
///
/// LibTorch allocates a fresh tensor for every operation and frees it soon after. With
/// glibc's defaults, blocks over 32 MiB are mapped apart and unmapped when freed, and the
/// heap's top is trimmed when a megabyte or so is free there, so every page of the next
/// block is faulted in and zeroed again by the kernel. SAM ViT-B's image encoder allocates
/// attention matrices of 800 MB per global block (3.6 million page faults, 7 s of system
/// time per image); the automatic generator's decoder frees and reallocates megabytes
/// thousands of times. This takes every block from the heap (no separate mappings), never
/// trims it and pads its growth by 256 MiB, so freed memory is reused without a fault:
/// SAM ViT-B's encoding went from 10.5–11.8 s to 7.3–7.9 s here (0.86 million page faults),
/// MobileSAM's generator from 41–46 s to 36–37 s with the earlier, milder settings, with the
/// same records. The price is that the process keeps its peak heap until it exits, so a
/// library should leave the choice to the program: nothing in this crate calls it; the
/// `som` binary does.
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
        const M_MMAP_MAX: c_int = -4;
        // SAFETY: mallopt only changes glibc's malloc parameters (under its own lock) and
        // returns 0 for a value it refuses; it touches no memory of ours. A trim threshold
        // of -1 turns trimming off (mallopt(3)); at most 0 separate mappings turns them off.
        unsafe {
            mallopt(M_MMAP_MAX, 0) == 1
                && mallopt(M_TRIM_THRESHOLD, -1) == 1
                && mallopt(M_TOP_PAD, 256 << 20) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
