//! The `hark` command-line tool. Its commands arrive with issue 5; until then
//! it only says so.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("hark: no commands yet; see README.md for what works today");
    ExitCode::from(2)
}
