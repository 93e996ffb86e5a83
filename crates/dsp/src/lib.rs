//! hark-dsp: audio signal processing (in progress).
