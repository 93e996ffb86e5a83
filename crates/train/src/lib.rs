//! hark-train: experiment config, training loop, optimizers, schedules,
//! checkpoints, metrics and cross-validation. Not implemented yet (issue 5).
