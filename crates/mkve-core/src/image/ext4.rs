//! A reader of ext4 as `mkfs.ext4` and the guest's kernel write it, over
//! any file that holds the file system's bytes (a base's raw `disk.img`,
//! or the raw view of a qcow2 chain that `export.rs` gives): the
//! superblock, the group descriptors, inodes, extent trees, directories.
//! It reads only (writes are debugfs's, in `mod.rs`), and no more of the
//! format than those roots use: a file mapped by blocks (ext2/3), inline
//! data and `meta_bg` are refused by name rather than misread. The layout
//! is the kernel's Documentation/filesystems/ext4/.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Problem, Result};

const MAGIC: u16 = 0xEF53;
const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_RECOVER: u32 = 0x4;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_64BIT: u32 = 0x80;
const RO_COMPAT_GDT_CSUM: u32 = 0x10;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
const BG_INODE_UNINIT: u16 = 0x1;
const FLAG_EXTENTS: u32 = 0x8_0000;
const FLAG_INLINE_DATA: u32 = 0x1000_0000;
const EXTENT_MAGIC: u16 = 0xF30A;
/// The root directory's inode.
pub(super) const ROOT: u32 = 2;
/// How much of an inode table is read at once into the cache, in blocks.
const CHUNK: u64 = 16;

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    CharDev,
    BlockDev,
    Fifo,
    Socket,
}

impl FileKind {
    fn of_mode(mode: u16) -> Option<FileKind> {
        Some(match mode & 0o170000 {
            0o100000 => FileKind::File,
            0o040000 => FileKind::Dir,
            0o120000 => FileKind::Symlink,
            0o020000 => FileKind::CharDev,
            0o060000 => FileKind::BlockDev,
            0o010000 => FileKind::Fifo,
            0o140000 => FileKind::Socket,
            _ => return None,
        })
    }

    /// The `S_IFMT` bits of this kind.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileKind::File => 0o100000,
            FileKind::Dir => 0o040000,
            FileKind::Symlink => 0o120000,
            FileKind::CharDev => 0o020000,
            FileKind::BlockDev => 0o060000,
            FileKind::Fifo => 0o010000,
            FileKind::Socket => 0o140000,
        }
    }
}

/// One inode, decoded.
#[derive(Debug, Clone)]
pub(super) struct Inode {
    pub ino: u32,
    pub kind: FileKind,
    /// Permission bits with set-id and sticky bits (07777).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    flags: u32,
    block: [u8; 60],
    /// The record's bytes, for comparing two inodes (see `same_record`).
    raw: Vec<u8>,
}

impl Inode {
    /// A device's major and minor numbers (ext2's old and new encodings).
    pub fn rdev(&self) -> (u32, u32) {
        let w0 = u32::from_le_bytes([self.block[0], self.block[1], self.block[2], self.block[3]]);
        if w0 != 0 {
            return ((w0 >> 8) & 0xff, w0 & 0xff);
        }
        let w1 = u32::from_le_bytes([self.block[4], self.block[5], self.block[6], self.block[7]]);
        ((w1 & 0xfff00) >> 8, (w1 & 0xff) | ((w1 >> 12) & 0xfff00))
    }

    /// Whether two records say the same, all but the access time and the
    /// checksums (a read moves the one, every change the others): the same
    /// inode unchanged, its data included (a change to data moves mtime
    /// and ctime, which are compared).
    pub fn same_record(&self, other: &Inode) -> bool {
        fn masked(r: &[u8]) -> Vec<u8> {
            let mut r = r.to_vec();
            // i_atime, l_i_checksum_lo, i_checksum_hi, i_atime_extra.
            for (at, len) in [(0x8, 4), (0x7C, 2), (0x82, 2), (0x8C, 4)] {
                if let Some(b) = r.get_mut(at..at + len) {
                    b.fill(0);
                }
            }
            r
        }
        self.ino == other.ino && masked(&self.raw) == masked(&other.raw)
    }
}

/// A directory entry: its name and inode.
#[derive(Debug, Clone)]
pub(super) struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u32,
}

/// An open ext4 file system.
pub(super) struct Fs {
    file: File,
    /// What the file is, for errors.
    label: PathBuf,
    block_size: u64,
    inodes_per_group: u32,
    inode_size: u64,
    inodes_count: u32,
    /// Each group's inode table (a block number) and the inodes in it that
    /// are in use or may be (the rest never were: `bg_itable_unused`).
    groups: Vec<(u64, u32)>,
    pub needs_recovery: bool,
    cache: RefCell<HashMap<u64, Vec<u8>>>,
}

impl Fs {
    /// Read the superblock and group descriptors of the file system in
    /// `file`. Errors (65): not ext4, or a layout this reader refuses.
    pub fn open(file: File, label: &Path) -> Result<Fs> {
        let bad = |why: String| Error::InvalidBundle(Problem::new(label, None, why));
        let mut sb = [0u8; 1024];
        file.read_exact_at(&mut sb, 1024)
            .map_err(|e| bad(format!("cannot read the superblock: {e}")))?;
        if le16(&sb, 0x38) != MAGIC {
            return Err(bad(
                "not an ext2/3/4 file system (no superblock magic)".into()
            ));
        }
        let log = le32(&sb, 0x18);
        if log > 6 {
            return Err(bad(format!("block size 2^{} is not ext4's", 10 + log)));
        }
        let block_size = 1024u64 << log;
        let incompat = le32(&sb, 0x60);
        let ro_compat = le32(&sb, 0x64);
        if incompat & INCOMPAT_META_BG != 0 {
            return Err(bad("meta_bg file systems are not read here".into()));
        }
        if incompat & INCOMPAT_FILETYPE == 0 {
            return Err(bad(
                "directory entries without file types (ext2's old format) are not read here".into(),
            ));
        }
        let inode_size = if le32(&sb, 0x4C) >= 1 {
            u64::from(le16(&sb, 0x58))
        } else {
            128
        };
        let desc_size = if incompat & INCOMPAT_64BIT != 0 {
            u64::from(le16(&sb, 0xFE)).max(32)
        } else {
            32
        };
        let blocks = u64::from(le32(&sb, 0x4))
            | if incompat & INCOMPAT_64BIT != 0 {
                u64::from(le32(&sb, 0x150)) << 32
            } else {
                0
            };
        let first = u64::from(le32(&sb, 0x14));
        let per_group = u64::from(le32(&sb, 0x20));
        let inodes_per_group = le32(&sb, 0x28);
        if per_group == 0 || inodes_per_group == 0 || inode_size < 128 {
            return Err(bad("a superblock with no groups or inodes".into()));
        }
        let count = (blocks.saturating_sub(first)).div_ceil(per_group);
        let csum = ro_compat & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM) != 0;
        let mut table = vec![0u8; (count * desc_size) as usize];
        file.read_exact_at(&mut table, (first + 1) * block_size)
            .map_err(|e| bad(format!("cannot read the group descriptors: {e}")))?;
        let groups = table
            .chunks(desc_size as usize)
            .map(|d| {
                let hi = if desc_size >= 64 {
                    u64::from(le32(d, 0x28)) << 32
                } else {
                    0
                };
                let flags = le16(d, 0x12);
                let unused = if desc_size >= 64 {
                    u32::from(le16(d, 0x1C)) | (u32::from(le16(d, 0x32)) << 16)
                } else {
                    u32::from(le16(d, 0x1C))
                };
                let used = if !csum {
                    inodes_per_group
                } else if flags & BG_INODE_UNINIT != 0 {
                    0
                } else {
                    inodes_per_group.saturating_sub(unused)
                };
                (u64::from(le32(d, 0x8)) | hi, used)
            })
            .collect();
        Ok(Fs {
            file,
            label: label.to_path_buf(),
            block_size,
            inodes_per_group,
            inode_size,
            inodes_count: le32(&sb, 0x0),
            groups,
            needs_recovery: incompat & INCOMPAT_RECOVER != 0,
            cache: RefCell::new(HashMap::new()),
        })
    }

    fn bad(&self, why: impl Into<String>) -> Error {
        Error::InvalidBundle(Problem::new(&self.label, None, why))
    }

    /// `len` bytes at byte `at`, through the metadata cache (what is read
    /// often: inode tables, directories, extent blocks), which reads
    /// `blocks` blocks at a time.
    fn cached(&self, at: u64, len: usize, blocks: u64) -> Result<Vec<u8>> {
        let chunk = self.block_size * blocks;
        let mut out = Vec::with_capacity(len);
        let mut pos = at;
        let end = at + len as u64;
        while pos < end {
            let base = pos / chunk * chunk;
            let mut cache = self.cache.borrow_mut();
            if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(base) {
                let mut buf = vec![0u8; chunk as usize];
                let n = read_full(&self.file, &mut buf, base)
                    .map_err(|e| self.bad(format!("read at byte {base}: {e}")))?;
                buf.truncate(n);
                slot.insert(buf);
            }
            let buf = cache.get(&base).map(Vec::as_slice).unwrap_or_default();
            let from = (pos - base) as usize;
            let to = ((end - base) as usize).min(buf.len());
            if from >= to {
                return Err(self.bad(format!("byte {pos} is past the image's end")));
            }
            out.extend_from_slice(&buf[from..to]);
            pos = base + to as u64;
        }
        Ok(out)
    }

    /// Inode `ino`; `None` when it is not in use (no links, or not a kind
    /// of file).
    pub fn inode(&self, ino: u32) -> Result<Option<Inode>> {
        if ino == 0 || ino > self.inodes_count {
            return Ok(None);
        }
        let g = ((ino - 1) / self.inodes_per_group) as usize;
        let index = u64::from((ino - 1) % self.inodes_per_group);
        let Some(&(table, used)) = self.groups.get(g) else {
            return Ok(None);
        };
        if index >= u64::from(used) {
            return Ok(None);
        }
        let raw = self.cached(
            table * self.block_size + index * self.inode_size,
            self.inode_size as usize,
            CHUNK,
        )?;
        let mode = le16(&raw, 0);
        let links = le16(&raw, 0x1A);
        let Some(kind) = FileKind::of_mode(mode) else {
            return Ok(None);
        };
        if links == 0 {
            return Ok(None);
        }
        let extra = if self.inode_size > 128 {
            u32::from(le16(&raw, 0x80))
        } else {
            0
        };
        let mtime_extra = if extra >= 0x0C { le32(&raw, 0x88) } else { 0 };
        let mut block = [0u8; 60];
        block.copy_from_slice(&raw[0x28..0x28 + 60]);
        Ok(Some(Inode {
            ino,
            kind,
            perm: u32::from(mode) & 0o7777,
            uid: u32::from(le16(&raw, 0x2)) | (u32::from(le16(&raw, 0x78)) << 16),
            gid: u32::from(le16(&raw, 0x18)) | (u32::from(le16(&raw, 0x7A)) << 16),
            size: u64::from(le32(&raw, 0x4)) | (u64::from(le32(&raw, 0x6C)) << 32),
            mtime: i64::from(le32(&raw, 0x10) as i32) + (i64::from(mtime_extra & 3) << 32),
            flags: le32(&raw, 0x20),
            block,
            raw,
        }))
    }

    /// The extents of `inode`: (first logical block, first physical
    /// block, length, initialized), in order. Errors: not extent-mapped.
    fn extents(&self, inode: &Inode) -> Result<Vec<(u64, u64, u64, bool)>> {
        if inode.flags & FLAG_INLINE_DATA != 0 {
            return Err(self.bad(format!("inode {}: inline data is not read here", inode.ino)));
        }
        if inode.flags & FLAG_EXTENTS == 0 {
            if inode.block.iter().all(|b| *b == 0) {
                return Ok(Vec::new());
            }
            return Err(self.bad(format!(
                "inode {}: a file mapped by blocks (ext2/3), not extents, is not read here",
                inode.ino
            )));
        }
        let mut out = Vec::new();
        self.walk_extents(&inode.block, inode.ino, 0, &mut out)?;
        out.sort_by_key(|e| e.0);
        Ok(out)
    }

    fn walk_extents(
        &self,
        node: &[u8],
        ino: u32,
        level: u32,
        out: &mut Vec<(u64, u64, u64, bool)>,
    ) -> Result<()> {
        if node.len() < 12 || le16(node, 0) != EXTENT_MAGIC || level > 5 {
            return Err(self.bad(format!("inode {ino}: a broken extent tree")));
        }
        let entries = usize::from(le16(node, 2));
        let depth = le16(node, 6);
        for i in 0..entries {
            let e = node
                .get(12 + i * 12..24 + i * 12)
                .ok_or_else(|| self.bad(format!("inode {ino}: a broken extent tree")))?;
            if depth == 0 {
                let len = u64::from(le16(e, 4));
                let (len, init) = if len > 32768 {
                    (len - 32768, false)
                } else {
                    (len, true)
                };
                let start = (u64::from(le16(e, 6)) << 32) | u64::from(le32(e, 8));
                out.push((u64::from(le32(e, 0)), start, len, init));
            } else {
                let leaf = (u64::from(le16(e, 8)) << 32) | u64::from(le32(e, 4));
                let child = self.cached(leaf * self.block_size, self.block_size as usize, 1)?;
                self.walk_extents(&child, ino, level + 1, out)?;
            }
        }
        Ok(())
    }

    /// Copy the contents of `inode` (a file, or a symbolic link's target)
    /// to `out`; holes and unwritten extents read as zeros. `cache` puts
    /// what is read in the metadata cache (directories).
    pub fn read_to(&self, inode: &Inode, out: &mut dyn std::io::Write, cache: bool) -> Result<()> {
        if inode.kind == FileKind::Symlink && inode.flags & FLAG_EXTENTS == 0 && inode.size < 60 {
            return out
                .write_all(&inode.block[..inode.size as usize])
                .map_err(|e| Error::io("(output)", e));
        }
        let bs = self.block_size;
        let mut left = inode.size;
        let mut at = 0u64; // the next logical block to write
        let zeros = vec![0u8; bs as usize];
        let put = |out: &mut dyn std::io::Write, bytes: &[u8], left: &mut u64| {
            let n = (bytes.len() as u64).min(*left) as usize;
            *left -= n as u64;
            out.write_all(&bytes[..n])
                .map_err(|e| Error::io("(output)", e))
        };
        for (logical, physical, len, init) in self.extents(inode)? {
            while at < logical && left > 0 {
                put(out, &zeros, &mut left)?;
                at += 1;
            }
            if left == 0 {
                break;
            }
            // Read in runs of up to 256 blocks.
            let mut done = 0;
            while done < len && left > 0 {
                let run = (len - done).min(256).min(left.div_ceil(bs));
                if !init {
                    for _ in 0..run {
                        put(out, &zeros, &mut left)?;
                    }
                } else {
                    let pos = (physical + done) * bs;
                    let bytes = if cache {
                        self.cached(pos, (run * bs) as usize, 1)?
                    } else {
                        let mut buf = vec![0u8; (run * bs) as usize];
                        read_full(&self.file, &mut buf, pos)
                            .map_err(|e| self.bad(format!("inode {}: {e}", inode.ino)))?;
                        buf
                    };
                    put(out, &bytes, &mut left)?;
                }
                done += run;
            }
            at = logical + len;
        }
        while left > 0 {
            put(out, &zeros, &mut left)?;
        }
        Ok(())
    }

    /// The entries of directory `inode`, `.` and `..` left out.
    pub fn read_dir(&self, inode: &Inode) -> Result<Vec<DirEntry>> {
        let mut data = Vec::new();
        self.read_to(inode, &mut data, true)?;
        let mut out = Vec::new();
        let bs = self.block_size as usize;
        for block in data.chunks(bs) {
            let mut at = 0;
            while at + 8 <= block.len() {
                let ino = le32(block, at);
                let rec_len = usize::from(le16(block, at + 4));
                let name_len = usize::from(block[at + 6]);
                if rec_len < 8 || at + rec_len > block.len() || 8 + name_len > rec_len {
                    return Err(self.bad(format!(
                        "directory inode {}: a broken entry at byte {at} of a block",
                        inode.ino
                    )));
                }
                let name = &block[at + 8..at + 8 + name_len];
                if ino != 0 && name != b"." && name != b".." {
                    out.push(DirEntry {
                        name: name.to_vec(),
                        ino,
                    });
                }
                at += rec_len;
            }
        }
        Ok(out)
    }

    /// Resolve the absolute path `path` to an inode, not following a
    /// symbolic link at any step; `None` when a component is missing.
    pub fn lookup(&self, path: &Path) -> Result<Option<Inode>> {
        use std::os::unix::ffi::OsStrExt;
        let Some(mut cur) = self.inode(ROOT)? else {
            return Err(self.bad("no root directory"));
        };
        for c in path.components() {
            match c {
                std::path::Component::RootDir | std::path::Component::CurDir => continue,
                std::path::Component::Normal(name) => {
                    if cur.kind != FileKind::Dir {
                        return Ok(None);
                    }
                    let found = self
                        .read_dir(&cur)?
                        .into_iter()
                        .find(|e| e.name == name.as_bytes());
                    match found.map(|e| self.inode(e.ino)).transpose()?.flatten() {
                        Some(i) => cur = i,
                        None => return Ok(None),
                    }
                }
                _ => return Ok(None),
            }
        }
        Ok(Some(cur))
    }
}

/// Read into `buf` at `at` until it is full or the file ends: how many
/// bytes were read.
fn read_full(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], at + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn le16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
