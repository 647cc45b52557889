//! mkve-core: the template and bundle formats and the machinery the mkve
//! tools share. The binaries parse arguments and call into this crate; one
//! picture: template → root → bundle → VM.

pub mod access;
pub mod bundle;
pub mod config;
pub mod console;
pub mod doctor;
pub mod error;
pub mod exec;
pub mod files;
pub mod hooks;
pub mod hypervisor;
pub mod ids;
pub mod kvm;
pub mod libvirt;
pub mod lock;
pub mod net;
pub mod openvz;
pub mod pack;
pub mod paths;
pub mod report;
pub mod root;
pub mod sign;
pub mod template;
pub mod vm;

pub use error::{Error, Result};
