//! What bench/image-diff.sh times: a change written into a machine's disk
//! through `mkve_core::image`, and the diff of that disk against its base.
//!
//!     image_diff write DISK TREE      (TREE copied in at /)
//!     image_diff diff DISK BASE       (prints the changes' count and time)

use std::path::Path;
use std::time::Instant;

use mkve_core::exec::Silent;
use mkve_core::image::{self, Access, Image};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = || -> mkve_core::Result<()> {
        match args
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["write", disk, tree] => {
                let t = Instant::now();
                let mut i = Image::open(Path::new(disk), Access::ReadWrite, &Silent)?;
                let opened = t.elapsed();
                i.write_tree(Path::new(tree), Path::new("/"), &Silent)?;
                i.close()?;
                println!(
                    "write: open {:.3} s, all {:.3} s",
                    opened.as_secs_f64(),
                    t.elapsed().as_secs_f64()
                );
                Ok(())
            }
            ["diff", disk, base] => {
                let t = Instant::now();
                let changes = image::diff(Path::new(disk), Path::new(base), &Silent)?;
                println!(
                    "diff: {} changes in {:.3} s",
                    changes.len(),
                    t.elapsed().as_secs_f64()
                );
                Ok(())
            }
            _ => Err(mkve_core::Error::Usage(
                "usage: image_diff write DISK TREE | diff DISK BASE".into(),
            )),
        }
    };
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("image_diff: {e}");
            std::process::ExitCode::from(e.exit_code() as u8)
        }
    }
}
