//! The error type of hark-dsp.

/// Errors from building a plan or processing a signal.
///
/// Every variant carries the offending value, so a message such as
/// `n_fft must be > 0, got 0` can be shown to a user as it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DspError {
    /// A configuration field breaks a rule; `rule` states it with the value.
    #[error("invalid {field}: {rule}")]
    InvalidParameter {
        /// The field at fault, e.g. `n_fft`.
        field: &'static str,
        /// The rule and the value that broke it, e.g. `must be > 0, got 0`.
        rule: String,
    },
    /// The input signal holds no samples.
    #[error("empty signal: at least one sample is needed")]
    EmptySignal,
    /// The signal is too short for the requested framing.
    #[error("signal of {len} samples is too short: {needed} needed")]
    SignalTooShort {
        /// Samples in the signal.
        len: usize,
        /// Samples the operation needs.
        needed: usize,
    },
    /// The signal holds NaN or infinite samples.
    #[error("signal holds {count} non-finite samples (NaN or infinity) of {len}")]
    NonFinite {
        /// Number of NaN or infinite samples.
        count: usize,
        /// Samples in the signal.
        len: usize,
    },
    /// Channels of a multi-channel signal differ in length.
    #[error("channel {channel} has {got} samples, channel 0 has {expected}")]
    ChannelLengthMismatch {
        /// The first channel whose length differs.
        channel: usize,
        /// Length of channel 0.
        expected: usize,
        /// Length of the offending channel.
        got: usize,
    },
    /// The resampler could not be built or run.
    #[error("resampling {from} Hz -> {to} Hz failed: {reason}")]
    Resample {
        /// Input sample rate in Hz.
        from: u32,
        /// Output sample rate in Hz.
        to: u32,
        /// What rubato reported.
        reason: String,
    },
}

/// Shorthand for results of hark-dsp.
pub type Result<T> = std::result::Result<T, DspError>;

/// Builds an [`DspError::InvalidParameter`].
pub(crate) fn invalid(field: &'static str, rule: impl Into<String>) -> DspError {
    DspError::InvalidParameter {
        field,
        rule: rule.into(),
    }
}

/// Rejects an empty signal and one holding NaN or infinite samples.
pub(crate) fn check_signal(signal: &[f32]) -> Result<()> {
    if signal.is_empty() {
        return Err(DspError::EmptySignal);
    }
    // An all-ones exponent marks infinity and NaN. Summing u32 flags per
    // chunk vectorises; counting with `filter(..).count()` does not.
    let count: usize = signal
        .chunks(1 << 30)
        .map(|c| {
            c.iter()
                .map(|v| u32::from(v.to_bits() & 0x7f80_0000 == 0x7f80_0000))
                .sum::<u32>() as usize
        })
        .sum();
    if count > 0 {
        return Err(DspError::NonFinite {
            count,
            len: signal.len(),
        });
    }
    Ok(())
}

/// Panics with a message naming both lengths; kept out of line so hot loops stay small.
#[cold]
#[inline(never)]
pub(crate) fn buffer_len_mismatch(what: &str, expected: usize, got: usize) -> ! {
    panic!("{what} has length {got}, expected {expected}")
}
