//! 2-D max and average pooling with PyTorch's gradients; the op is
//! [`crate::ops::pool`].

use candle_core::Tensor;

use crate::ops::pool::{Kind, Pool};
use crate::{Error, Result};

/// Max pooling over `[N, C, H, W]` f32 with a square `kernel` and `stride`,
/// as `torch.nn.functional.max_pool2d` (floor mode, no padding).
///
/// # Errors
/// Another rank or dtype, or a kernel larger than the input.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    pool(x, Kind::Max, (kernel, kernel), (stride, stride))
}

/// [`max_pool2d`] with a `(rows, columns)` kernel and stride.
///
/// # Errors
/// As [`max_pool2d`].
pub fn max_pool2d_hw(x: &Tensor, kernel: (usize, usize), stride: (usize, usize)) -> Result<Tensor> {
    pool(x, Kind::Max, kernel, stride)
}

/// Average pooling over `[N, C, H, W]` f32, as
/// `torch.nn.functional.avg_pool2d` (floor mode, no padding).
///
/// # Errors
/// As [`max_pool2d`].
pub fn avg_pool2d(x: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    pool(x, Kind::Avg, (kernel, kernel), (stride, stride))
}

fn pool(x: &Tensor, kind: Kind, kernel: (usize, usize), stride: (usize, usize)) -> Result<Tensor> {
    if kernel.0 == 0 || kernel.1 == 0 || stride.0 == 0 || stride.1 == 0 {
        return Err(Error::Layer(format!(
            "pooling kernel {kernel:?} and stride {stride:?} must be positive"
        )));
    }
    let op = Pool::new(kind, kernel, stride, x.track_op());
    Ok(x.contiguous()?.apply_op1(op)?)
}
