//! mkve-vm(1). Managing machines through libvirt is not in this
//! version yet: the binary exists so the workspace has its final shape, and
//! says so plainly instead of pretending.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--version" || a == "-V") {
        println!("mkve-vm {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    eprintln!("mkve-vm: not available in this version of mkve");
    ExitCode::from(69)
}
