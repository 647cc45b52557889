//! mkve-web(8): the web front-end of an mkve node.

use std::process::ExitCode;

fn main() -> ExitCode {
    mkve_cli::main("mkve-web", |cli: mkve_web::cli::Cli, _| {
        mkve_web::server::run(cli)
    })
}
