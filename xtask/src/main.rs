//! `cargo xtask`: repository automation (download, synth, cv). The commands
//! arrive with issues 3 and 5; until then it lists what is planned.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("cargo xtask: no tasks yet (planned: download, synth, cv)");
    ExitCode::from(2)
}
