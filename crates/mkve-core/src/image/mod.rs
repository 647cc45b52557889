//! A machine's files read and written through its disk, with nothing
//! mounted on the node (these nodes have neither nbd nor device-mapper,
//! and a guest's file system is not to be trusted to the node's kernel):
//! what backups read, and restores, upgrades and pack write.
//!
//! How, and why so. A qemu, kvm or xen machine's disk is a qcow2 overlay
//! on its base's raw `disk.img` (vm/disk.rs), holding one ext4 file
//! system. `export.rs` has `qemu-storage-daemon` give the chain's bytes
//! as one raw file (a FUSE export, mounted only in the daemon's own mount
//! namespace); a raw disk is read as it is. Reads are this crate's own
//! ext4 reader (`ext4.rs`) over that file; writes are e2fsprogs' `debugfs
//! -w`, which knows how to allocate, link and checksum. libguestfs was
//! the other way: it boots an appliance kernel for every open (seconds
//! with KVM, tens of seconds under TCG, which is what CI has) and pulls
//! a kernel and supermin into the node's packages; qemu-storage-daemon
//! comes with qemu-utils, which the node has, and starts in milliseconds.
//!
//! `diff` says what a machine changed against its base, file by file: the
//! delta a backup carries. For lxc the same answer comes from the
//! overlay's upper layer (`diff_upper`).

mod diff;
mod disk;
mod export;
mod ext4;

pub use diff::{diff, diff_images, diff_upper, Change, ChangeKind};
pub use disk::{set_mtime, Access, Entry, Image};
pub use ext4::FileKind;
