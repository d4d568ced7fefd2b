//! A LibTorch tensor's float32 data borrowed in place as a Rust slice, for the kernels that
//! read and write tensors without copying them.
//!
//! The slice's extent comes from the tensor's sizes and strides and its type and device are
//! checked here, so what is left to the caller (and stated at each call) is the one thing a
//! `&Tensor` cannot promise: that no other handle on the same storage writes it while the
//! slice lives (tensors share storage, so Rust's borrow of the handle does not cover it).

use tch::{Device, Kind, Tensor};

/// How many floats from `t`'s data pointer its elements span: the offset of its last
/// element plus one, 0 when it has none (what a kernel reading a strided view in place
/// may borrow). `t.numel()` for a dense tensor in any dimension order.
///
/// # Panics
/// If a stride is negative (the span would begin before the data pointer).
pub(crate) fn extent(t: &Tensor) -> usize {
    let (size, stride) = (t.size(), t.stride());
    assert!(stride.iter().all(|&s| s >= 0), "non-negative strides");
    if size.contains(&0) {
        return 0;
    }
    1 + size
        .iter()
        .zip(&stride)
        .map(|(&n, &s)| ((n - 1) * s) as usize)
        .sum::<usize>()
}

/// Whether the kernels can read `t` in place: float32 on the CPU.
pub(crate) fn cpu_f32(t: &Tensor) -> bool {
    t.kind() == Kind::Float && t.device() == Device::Cpu
}

/// `t`'s elements in place: the [`extent`] floats from its data pointer (all its elements,
/// in memory order, when it is dense; a strided view's span, gaps included, otherwise).
/// Every element lies within the slice, and the slice within the tensor's storage.
///
/// # Safety
/// `t`'s storage must outlive the slice, and nothing (through `t` or any other tensor on the
/// same storage) may write it while the slice lives.
///
/// # Panics
/// If `t` is not float32 on the CPU or has a negative stride.
pub(crate) unsafe fn floats(t: &Tensor) -> &[f32] {
    assert!(
        cpu_f32(t),
        "a float32 CPU tensor, not {:?} on {:?}",
        t.kind(),
        t.device()
    );
    let len = extent(t);
    if len == 0 {
        return &[];
    }
    std::slice::from_raw_parts(t.data_ptr() as *const f32, len)
}

/// `t`'s elements in place, to write: its `numel` floats from its data pointer, one per
/// element, in memory order.
///
/// # Safety
/// `t`'s storage must outlive the slice, and nothing else (through `t` or any other tensor
/// on the same storage) may read or write it while the slice lives — typically `t` was just
/// allocated by the caller, or is held by it mutably.
///
/// # Panics
/// If `t` is not a float32 CPU tensor whose elements fill its span one to one (dense, in
/// any dimension order).
// The slice borrows the tensor's storage, which `&Tensor` does not own; the safety
// contract above is what keeps it exclusive.
#[allow(clippy::mut_from_ref)]
pub(crate) unsafe fn floats_mut(t: &Tensor) -> &mut [f32] {
    assert!(
        cpu_f32(t),
        "a float32 CPU tensor, not {:?} on {:?}",
        t.kind(),
        t.device()
    );
    let len = t.numel();
    assert!(
        is_dense(t),
        "a dense tensor, not sizes {:?} strides {:?}",
        t.size(),
        t.stride()
    );
    if len == 0 {
        return &mut [];
    }
    std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, len)
}

/// A tensor's floats written in place by several threads at once, each at places no other
/// writes (rows of a batch, a block of rows of one prompt): what a parallel kernel hands
/// its pieces of work instead of one `&mut [f32]`, which only one of them could hold.
pub(crate) struct SharedOutput {
    data: *mut f32,
    len: usize,
}

// SAFETY: the threads share a SharedOutput only to write through it at places no two of
// them share (the contract of `new`, `slice` and `at`).
unsafe impl Sync for SharedOutput {}

impl SharedOutput {
    /// `t`'s floats, one per element in memory order (as [`floats_mut`]).
    ///
    /// # Safety
    /// `t`'s storage must outlive the value and everything written through it, and nothing
    /// but the writes through it may read or write the storage meanwhile (typically `t`
    /// was just allocated by the caller).
    ///
    /// # Panics
    /// As [`floats_mut`]: if `t` is not a dense float32 CPU tensor.
    pub(crate) unsafe fn new(t: &Tensor) -> Self {
        let data = floats_mut(t);
        SharedOutput {
            data: data.as_mut_ptr(),
            len: data.len(),
        }
    }

    /// `len` floats from `start`.
    ///
    /// # Safety
    /// No other slice or pointer of this output that writes any of these floats may be in
    /// use at the same time.
    ///
    /// # Panics
    /// If the slice does not lie within the output.
    // The slice borrows the tensor's storage, not `self` (a pointer): the threads share
    // `self` and each takes its own part, which the safety contract keeps apart.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(
            start.checked_add(len).is_some_and(|end| end <= self.len),
            "a slice within the output"
        );
        std::slice::from_raw_parts_mut(self.data.add(start), len)
    }

    /// The output's floats from `start` on, as a pointer for a kernel that writes at
    /// strided places.
    ///
    /// # Safety
    /// The caller may write through the pointer only within the output and only at places
    /// no other slice or pointer of this output writes at the same time.
    ///
    /// # Panics
    /// If `start` is past the output's end.
    pub(crate) unsafe fn at(&self, start: usize) -> *mut f32 {
        assert!(start <= self.len, "a place within the output");
        self.data.add(start)
    }
}

/// Whether `t`'s elements fill its span one to one: its dimensions, ordered by stride,
/// each step over exactly the ones inside it (a contiguous or permuted-contiguous tensor,
/// e.g. channels-last).
fn is_dense(t: &Tensor) -> bool {
    let mut dims: Vec<(i64, i64)> = t
        .size()
        .into_iter()
        .zip(t.stride())
        .filter(|&(n, _)| n != 1)
        .collect();
    if dims.iter().any(|&(n, _)| n == 0) {
        return true;
    }
    dims.sort_by_key(|&(_, s)| s);
    let mut span = 1;
    for (n, s) in dims {
        if s != span {
            return false;
        }
        span *= n;
    }
    true
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use super::{extent, floats, floats_mut, is_dense, SharedOutput};

    #[test]
    fn extents_span_every_element_of_views() {
        let t = Tensor::arange(24, (Kind::Float, Device::Cpu)).view([2, 3, 4]);
        assert_eq!(extent(&t), 24);
        // A column view: from its first element to its last.
        assert_eq!(extent(&t.narrow(2, 1, 2)), 12 + 2 * 4 + 1 + 1);
        assert_eq!(extent(&t.narrow(1, 0, 0)), 0);
        // SAFETY: nothing writes `t` while the slices live.
        let (all, view) = unsafe { (floats(&t).to_vec(), floats(&t.narrow(2, 1, 2)).to_vec()) };
        assert_eq!(all.len(), 24);
        assert_eq!(view.first(), Some(&1.0));
        assert_eq!(view.last(), Some(&22.0));
    }

    #[test]
    fn only_dense_tensors_are_written_in_place() {
        let t = Tensor::zeros([2, 3, 4], (Kind::Float, Device::Cpu));
        assert!(is_dense(&t));
        assert!(is_dense(&t.permute([0, 2, 1])));
        assert!(is_dense(&t.narrow(0, 1, 1)));
        assert!(!is_dense(&t.narrow(2, 0, 2)));
        assert!(!is_dense(
            &Tensor::zeros([3], (Kind::Float, Device::Cpu)).expand([2, 3], false)
        ));
        let c = t.permute([0, 2, 1]);
        // SAFETY: `c`'s storage is `t`'s, which nothing else touches while the slice lives.
        unsafe { floats_mut(&c)[5] = 7.0 };
        assert_eq!(t.view([-1]).double_value(&[5]), 7.0);
    }

    #[test]
    #[should_panic(expected = "a dense tensor")]
    fn a_strided_view_is_not_written_in_place() {
        let t = Tensor::zeros([2, 4], (Kind::Float, Device::Cpu));
        // SAFETY: nothing else touches `t` (the call panics before any slice exists).
        unsafe { floats_mut(&t.narrow(1, 0, 2)) };
    }

    #[test]
    #[should_panic(expected = "a float32 CPU tensor")]
    fn other_types_are_refused() {
        let t = Tensor::zeros([4], (Kind::Double, Device::Cpu));
        // SAFETY: nothing else touches `t` (the call panics before any slice exists).
        unsafe { floats(&t) };
    }

    #[test]
    #[should_panic(expected = "a slice within the output")]
    fn shared_outputs_give_only_slices_within_them() {
        let t = Tensor::zeros([2, 4], (Kind::Float, Device::Cpu));
        // SAFETY: `t` was just allocated and only this test writes it.
        let out = unsafe { SharedOutput::new(&t) };
        // SAFETY: no other slice of `out` is alive.
        unsafe { out.slice(4, 4)[3] = 1.0 };
        assert_eq!(t.double_value(&[1, 3]), 1.0);
        // SAFETY: as above (the call panics before any slice exists).
        unsafe { out.slice(5, 4) };
    }
}
