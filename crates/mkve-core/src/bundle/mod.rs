//! Bundle format 3 (mkve-bundle(5); formats 1 and 2 are still read): an
//! outer tar whose members are, in order, `meta.json`, `meta.json.asc`
//! (absent when unsigned), `sbom.spdx.json`, `provenance.intoto.json`,
//! `rootfs.tar.zst` and `conf/…`. meta.json lists the sha256 of every
//! payload member, so the one signature covers everything and a reader
//! checks it before it reads any payload.

mod make;
mod members;
pub(crate) mod meta;
pub mod provenance;
mod read;
pub mod sbom;

pub use make::{
    conf_members, head_of, make, pack_root, write, Described, MakeOptions, PackedRoot, RootSource,
    Signing,
};
pub use members::{CONF, META, ROOTFS, SIGNATURE};
pub use meta::{Installed, Meta, Packages, PackedFrom, TemplateRef, FORMAT};
pub(crate) use read::HashTee;
pub use read::{read, Check, ReadOptions, ReadResult, SkipRoot};
