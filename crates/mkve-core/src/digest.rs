//! Digests as mkve writes them: lower-case hex, and a file's sha256. A
//! bundle's members, a base's contents, a fetched list and the directories
//! a client remembers are all named by these (after coreos-installer's
//! `io/hash.rs`: one module for the hashing every reader shares).

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{IoContext, Result};

/// `bytes` as lower-case hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of the file at `path`, as hex. Errors: it cannot be read.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).at(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).at(path)?;
    Ok(hex(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn a_files_sha256() {
        let d = crate::testing::tree(&[("f", "abc")]);
        assert_eq!(
            sha256_file(&d.path().join("f")).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
