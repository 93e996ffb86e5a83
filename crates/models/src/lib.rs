//! hark-models: the seed architectures in candle. Not implemented yet (issue 4).
