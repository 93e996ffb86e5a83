//! The experiment config parser on arbitrary text: a config whose numbers
//! are in range, or an error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(config) = hark_train::ExperimentConfig::parse(text, Path::new("fuzz.toml"), &[]) {
        assert!(config.train.batch_size > 0 && config.train.epochs > 0);
        let _ = config.to_toml(Path::new("fuzz.toml"));
    }
});
