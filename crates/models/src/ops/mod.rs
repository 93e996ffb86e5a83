//! The CPU kernels behind the layers, as candle custom ops with exact
//! backward passes. Layers (one directory up) build these ops; nothing here
//! imports a layer, and the fused conv + batch-norm chain builds on the two
//! ops it fuses without either knowing of it.

pub(crate) mod act;
pub(crate) mod batch_norm;
pub(crate) mod buffers;
pub(crate) mod conv;
pub(crate) mod conv_bn;
pub(crate) mod pool;
pub(crate) mod scan;
