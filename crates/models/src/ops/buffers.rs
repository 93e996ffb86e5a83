//! Raw CPU access for the custom ops: f32 slices of tensors, and the
//! buffers they reuse across calls and steps.

use candle_core::{CpuStorage, Layout, Storage, Tensor};

/// The contiguous f32 data of a storage as its layout sees it.
pub(crate) fn f32_data<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("hark op needs a contiguous input")
    };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// Calls `f` on the f32 data of `t` (made contiguous first).
pub(crate) fn with_f32<R>(
    t: &Tensor,
    f: impl FnOnce(&[f32]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("hark ops run on the CPU only")
    };
    f(f32_data(cpu, layout)?)
}

/// Buffers handed back by [`recycle`], for [`recycled`].
static POOL: std::sync::Mutex<Vec<Vec<f32>>> = std::sync::Mutex::new(Vec::new());

/// Buffers the pool keeps; past it, the smallest are freed.
const POOL_BUFFERS: usize = 16;

/// A vector of `len` values for an output the caller writes in full: a
/// buffer [`recycle`]d earlier if one is large enough (its values are
/// whatever it last held), else a new one. A training step's intermediate
/// activations and gradients have the same sizes every step, so they reuse
/// the last step's memory instead of zeroing fresh pages.
pub(crate) fn recycled(len: usize) -> Vec<f32> {
    let found = {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        // The smallest buffer that holds `len`.
        let best = (pool.iter().enumerate())
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        best.map(|i| pool.swap_remove(i))
    };
    match found {
        Some(mut v) => {
            v.truncate(len);
            v.resize(len, 0.0);
            v
        }
        None => vec![0.0; len],
    }
}

/// Hands `buffer` back for [`recycled`] to reuse.
pub(crate) fn recycle(buffer: Vec<f32>) {
    if buffer.capacity() == 0 {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    pool.push(buffer);
    if pool.len() > POOL_BUFFERS {
        let smallest = (pool.iter().enumerate())
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        if let Some(i) = smallest {
            pool.swap_remove(i);
        }
    }
}

thread_local! {
    /// Buffers [`with_scratch`] lends out, kept between calls.
    static SCRATCH: std::cell::Cell<Vec<Vec<f32>>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Calls `f` with `N` buffers of the given lengths, reused across calls on
/// this thread: no allocation or zeroing once they have grown (rayon calls
/// a `for_each_init` initialiser again for every piece it splits work
/// into). Their contents are whatever an earlier call left. A nested call
/// (work stolen while `f` runs) gets buffers of its own.
pub(crate) fn with_scratch<const N: usize, R>(
    lens: [usize; N],
    f: impl FnOnce([&mut [f32]; N]) -> R,
) -> R {
    let mut pool = SCRATCH.take();
    let mut bufs: [Vec<f32>; N] = std::array::from_fn(|_| pool.pop().unwrap_or_default());
    SCRATCH.set(pool);
    for (b, &len) in bufs.iter_mut().zip(&lens) {
        if b.len() < len {
            b.resize(len, 0.0);
        }
    }
    let mut lens = lens.into_iter();
    let out = f(bufs.each_mut().map(|b| {
        let len = lens.next().unwrap_or(0);
        &mut b[..len]
    }));
    let mut pool = SCRATCH.take();
    pool.extend(bufs);
    SCRATCH.set(pool);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_buffers_persist_and_a_nested_call_gets_its_own() {
        with_scratch([3, 5], |[a, b]| {
            assert_eq!((a.len(), b.len()), (3, 5));
            a.fill(1.0);
            // Work stolen while `a` is lent out must not see it.
            with_scratch([3], |[c]| c.fill(2.0));
            assert_eq!(a, [1.0; 3]);
        });
        // Buffers come back at the lengths asked, whatever they held.
        with_scratch([2, 7], |[a, b]| assert_eq!((a.len(), b.len()), (2, 7)));
    }

    #[test]
    fn recycled_buffers_come_at_the_length_asked_and_the_pool_stays_bounded() {
        for len in 1..=2 * POOL_BUFFERS {
            recycle(vec![7.0; len * 10]);
        }
        assert!(POOL.lock().unwrap().len() <= POOL_BUFFERS);
        for len in [60, 0, 5000] {
            assert_eq!(recycled(len).len(), len);
        }
    }
}
