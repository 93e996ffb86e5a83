//! hark-data: WAV decoding, dataset manifests, splits, the cached feature
//! pipeline and the synthetic demo corpus. Not implemented yet (issue 3).
