//! What a machine may be: its name and the resources it is given. Each
//! rule lives in one type whose constructor checks it, so the command
//! line, the web front-end and remote nodes refuse the same values with
//! the same words, before anything is made. The `FromStr` impls are what
//! clap parses with.

use std::fmt;
use std::str::FromStr;

/// A machine's (libvirt domain's) name: 1 to 63 ASCII letters, digits,
/// `-`, `_` or `.`, starting with a letter or digit, not all digits (a
/// name that reads as an ID would make `mkve-vm delete 100` ambiguous).
/// The limits are a DNS label's (RFC 1123), since the name also serves as
/// the machine's host name; libvirt's own rules (no `/`, no control
/// characters) are a subset.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MachineName(String);

impl MachineName {
    pub const MAX_LEN: usize = 63;

    pub fn new(name: &str) -> Result<MachineName, String> {
        let bad = |why: &str| {
            Err(format!(
                "\"{}\" is not a machine name: {why}",
                name.escape_debug()
            ))
        };
        if name.is_empty() {
            return bad("it is empty");
        }
        if name.len() > Self::MAX_LEN {
            return bad(&format!("longer than {} characters", Self::MAX_LEN));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return bad(&format!(
                "{c:?} is not allowed (letters, digits, -, _ and . are)"
            ));
        }
        if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return bad("it must start with a letter or a digit");
        }
        if name.bytes().all(|b| b.is_ascii_digit()) {
            return bad("it reads as a machine ID");
        }
        Ok(MachineName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MachineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl FromStr for MachineName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MachineName::new(s)
    }
}

/// A number within `range`, for the resource types below.
fn within(s: &str, what: &str, range: std::ops::RangeInclusive<u64>) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("\"{s}\" is not a number ({what})"))?;
    if !range.contains(&n) {
        return Err(format!(
            "{n} is out of range for {what}: {} to {}",
            range.start(),
            range.end()
        ));
    }
    Ok(n)
}

/// A machine's memory in MiB: 16 MiB to 16 TiB. Written `512`, `512M`
/// or `1G` (binary units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory(u64);

impl Memory {
    pub const MIN_MIB: u64 = 16;
    pub const MAX_MIB: u64 = 16 << 20;

    pub fn from_mib(mib: u64) -> Result<Memory, String> {
        if !(Self::MIN_MIB..=Self::MAX_MIB).contains(&mib) {
            return Err(format!(
                "{mib}M is out of range for memory: {}M to {}G",
                Self::MIN_MIB,
                Self::MAX_MIB >> 10
            ));
        }
        Ok(Memory(mib))
    }

    pub fn mib(self) -> u64 {
        self.0
    }
}

/// A size in MiB written `512`, `512M`, `2G` or `1T` (binary units).
fn parse_mib(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let (num, mult) = if let Some(n) = t.strip_suffix('T') {
        (n, 1 << 20)
    } else if let Some(n) = t.strip_suffix('G') {
        (n, 1 << 10)
    } else if let Some(n) = t.strip_suffix('M') {
        (n, 1)
    } else {
        (t.as_str(), 1)
    };
    let n: u64 = num
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("\"{s}\" is not a size like 512M or 1G"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("\"{s}\" is too large"))
}

impl FromStr for Memory {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Memory::from_mib(parse_mib(s)?)
    }
}

/// The size of a qemu, kvm or xen machine's disk in MiB: 256 MiB to 64 TiB.
/// Written as `Memory` is (`20G`, `1T`). The root must fit in it with room
/// to spare, which is known once the bundle is unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSize(u64);

impl DiskSize {
    pub const MIN_MIB: u64 = 256;
    pub const MAX_MIB: u64 = 64 << 20;

    pub fn mib(self) -> u64 {
        self.0
    }

    pub fn bytes(self) -> u64 {
        self.0 << 20
    }
}

impl FromStr for DiskSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mib = parse_mib(s)?;
        if !(Self::MIN_MIB..=Self::MAX_MIB).contains(&mib) {
            return Err(format!(
                "{mib}M is out of range for a disk: {}M to {}T",
                Self::MIN_MIB,
                Self::MAX_MIB >> 20
            ));
        }
        Ok(DiskSize(mib))
    }
}

/// A whole number that must lie in a range: its type, what it is called
/// in messages, and the range, with `get` and the `FromStr` clap parses
/// with.
macro_rules! bounded {
    ($(#[$doc:meta])* $name:ident, $what:literal, $range:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(u32);

        impl $name {
            pub fn get(self) -> u32 {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                // The range's ends fit u32, so the value does too.
                within(s, $what, $range).map(|n| $name(n as u32))
            }
        }
    };
}

bounded!(
    /// Virtual CPUs: 1 to 4096 (libvirt's own limit for a domain's vCPUs).
    Vcpus,
    "virtual CPUs",
    1..=4096
);

bounded!(
    /// CPU weight (libvirt's `<cputune><shares>`): 2 to 262144, the range
    /// of cgroup v1's cpu.shares (the kernel's MIN_SHARES and MAX_SHARES);
    /// libvirt maps it onto cgroup v2's cpu.weight.
    CpuShares,
    "CPU shares",
    2..=262_144
);

bounded!(
    /// Block I/O weight (libvirt's `<blkiotune><weight>`): 100 to 1000, the
    /// range formatdomain gives.
    BlkioWeight,
    "block I/O weight",
    100..=1000
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["ntp-server-100", "web1", "a", "db_2.test", "1web"] {
            assert_eq!(MachineName::new(ok).unwrap().as_str(), ok);
        }
        let err = |n: &str| MachineName::new(n).unwrap_err();
        assert_eq!(
            err("100"),
            "\"100\" is not a machine name: it reads as a machine ID"
        );
        assert!(err("a/b").contains("'/' is not allowed"), "{}", err("a/b"));
        assert!(err("").contains("empty"));
        assert!(err("-x").contains("start with"));
        assert!(err("a b").contains("' ' is not allowed"));
        assert!(err("tab\there").contains("'\\t'"));
        assert!(err(&"x".repeat(64)).contains("longer than 63"));
        assert!(err("dé").contains("'é'"));
    }

    #[test]
    fn sizes() {
        assert_eq!("512".parse::<Memory>().unwrap().mib(), 512);
        assert_eq!("512M".parse::<Memory>().unwrap().mib(), 512);
        assert_eq!("2g".parse::<Memory>().unwrap().mib(), 2048);
        assert!("lots".parse::<Memory>().is_err());
        assert!("0".parse::<Memory>().is_err());
        assert_eq!(
            "8M".parse::<Memory>().unwrap_err(),
            "8M is out of range for memory: 16M to 16384G"
        );
        assert!("99999999999999999999G".parse::<Memory>().is_err());
        assert_eq!("20G".parse::<DiskSize>().unwrap().bytes(), 20 << 30);
        assert_eq!("1t".parse::<DiskSize>().unwrap().mib(), 1 << 20);
        assert_eq!(
            "128M".parse::<DiskSize>().unwrap_err(),
            "128M is out of range for a disk: 256M to 64T"
        );
        assert!("65T".parse::<DiskSize>().is_err());
        assert!("99999999999999999T".parse::<DiskSize>().is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!("1000".parse::<BlkioWeight>().unwrap().get(), 1000);
        assert_eq!(
            "10000".parse::<BlkioWeight>().unwrap_err(),
            "10000 is out of range for block I/O weight: 100 to 1000"
        );
        assert!("99".parse::<BlkioWeight>().is_err());
        assert!("1".parse::<CpuShares>().is_err());
        assert_eq!("1024".parse::<CpuShares>().unwrap().get(), 1024);
        assert!("0".parse::<Vcpus>().is_err());
        assert!("two".parse::<Vcpus>().is_err());
        assert_eq!("4".parse::<Vcpus>().unwrap().get(), 4);
    }
}
