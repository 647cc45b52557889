//! mkve-core: the template and bundle formats and the machinery the mkve
//! tools share. The binaries parse arguments and call into this crate; one
//! picture: template → root → bundle → VM.

pub mod access;
pub mod audit;
#[cfg(feature = "gpg")]
pub mod bundle;
pub mod config;
#[cfg(feature = "libvirt")]
pub mod console;
pub mod date;
pub mod debversion;
mod declared;
pub mod digest;
#[cfg(feature = "libvirt")]
pub mod doctor;
pub mod dpkg;
pub mod error;
pub mod exec;
#[cfg(all(feature = "http", feature = "gpg"))]
pub mod fetch;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod ganeti_net;
pub mod hooks;
pub mod hypervisor;
#[cfg(feature = "libvirt")]
pub mod ids;
pub mod image;
pub mod interrupt;
pub mod kvm;
#[cfg(feature = "libvirt")]
pub mod libvirt;
pub mod listfile;
pub mod lock;
pub mod mkveconf;
pub mod net;
pub mod nodes;
pub mod openvz;
#[cfg(all(feature = "http", feature = "gpg"))]
pub mod outdated;
pub mod pack;
pub mod params;
pub mod paths;
pub mod probe;
pub mod process_error;
#[cfg(feature = "gpg")]
pub mod publish;
pub mod report;
pub mod root;
pub mod rpmdb;
pub mod scratch;
#[cfg(feature = "gpg")]
pub mod seen;
#[cfg(feature = "gpg")]
pub mod sign;
#[cfg(feature = "gpg")]
pub mod stamp;
pub mod state;
pub mod sums;
pub mod template;
#[cfg(test)]
mod testing;
pub mod text;
#[cfg(all(feature = "libvirt", feature = "gpg", feature = "http"))]
pub mod vm;

pub use error::{Error, Result};
