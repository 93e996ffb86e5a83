//! hark-models: the seed architectures in candle. This first part holds the
//! building blocks that candle 0.11 gets wrong for training: pooling with
//! exact gradients. The models follow (issue 4).
#![warn(missing_docs)]

mod pool;

pub use pool::{avg_pool2d, max_pool2d};
