//! The date and order of a signed `SHA256SUMS` (`mkve-bundle --publish`),
//! carried inside its OpenPGP signature, `SHA256SUMS.gpg`, so the list
//! itself stays what `sha256sum -c` and systemd-importd read:
//!
//! - the date is the signature's own creation time, which GnuPG takes
//!   from the system's clock (never from `SOURCE_DATE_EPOCH`);
//! - the order is a serial, the signed notation [`SERIAL`]: a decimal
//!   number, the publish time in seconds since 1970 or one more than the
//!   previous list's serial when that is not less (so it grows with every
//!   publish, even two in one second or with the clock set back, and
//!   starts above any earlier list in a directory published anew);
//! - an optional end of validity, the signed notation [`VALID_UNTIL`]:
//!   an RFC 3339 time in UTC (`2026-01-31T12:00:00Z`), after which a
//!   client refuses the list (`--valid-for`).
//!
//! Notations are hashed subpackets of the signature: covered by it, and
//! not critical, so gpg and gpgv (systemd-importd) ignore them.
//! Owns their names and values; not signing (sign.rs) nor what a client
//! remembers (seen.rs).

/// The serial's notation name.
pub const SERIAL: &str = "serial@mkve";
/// The end of validity's notation name.
pub const VALID_UNTIL: &str = "valid-until@mkve";

/// The latest time written or read: 9999-12-31T23:59:59Z.
pub const LATEST: u64 = 253_402_300_799;

/// What a list's signature says of its order and validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Grows with each publish of a directory.
    pub serial: u64,
    /// Seconds since 1970 (UTC) after which the list is refused; `None`:
    /// valid until replaced.
    pub valid_until: Option<u64>,
}

impl Stamp {
    /// The notations (name, value) that carry it.
    pub fn notations(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![(SERIAL, self.serial.to_string())];
        if let Some(t) = self.valid_until {
            v.push((VALID_UNTIL, crate::date::rfc3339(t)));
        }
        v
    }

    /// Read it from a signature's notations: `Ok(None)` when it has no
    /// [`SERIAL`] (a list signed by hand, or by an older mkve), and then
    /// no [`VALID_UNTIL`] either. Other notations are ignored. Errors
    /// (why, in words): a value that does not read (a serial that is not
    /// 1 to 20 decimal digits without a leading zero, or over 2^64 − 1; a
    /// time that is not `YYYY-MM-DDTHH:MM:SSZ`), a name given twice, or an
    /// end of validity without a serial.
    pub fn from_notations<'a>(
        notations: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Option<Stamp>, String> {
        let (mut serial, mut until) = (None, None);
        for (name, value) in notations {
            let slot = match name {
                SERIAL => &mut serial,
                VALID_UNTIL => &mut until,
                _ => continue,
            };
            if slot.is_some() {
                return Err(format!("the notation {name} is given twice"));
            }
            *slot = Some(value);
        }
        let valid_until = match until {
            None => None,
            Some(v) => Some(crate::date::parse_rfc3339(v).ok_or_else(|| {
                format!(
                    "{VALID_UNTIL}=\"{}\": not a time as YYYY-MM-DDTHH:MM:SSZ",
                    v.escape_debug()
                )
            })?),
        };
        let Some(s) = serial else {
            return match valid_until {
                None => Ok(None),
                Some(_) => Err(format!("{VALID_UNTIL} without {SERIAL}")),
            };
        };
        let plain = !s.is_empty()
            && s.len() <= 20
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        let serial = plain
            .then(|| s.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| {
                format!(
                    "{SERIAL}=\"{}\": not a serial (a decimal number, 0 to 18446744073709551615)",
                    s.escape_debug()
                )
            })?;
        Ok(Some(Stamp {
            serial,
            valid_until,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_from_its_notations_and_nothing_else() {
        let s = Stamp {
            serial: 1_700_000_123,
            valid_until: Some(1_800_000_000),
        };
        let n = s.notations();
        let read = Stamp::from_notations(n.iter().map(|(a, b)| (*a, b.as_str())));
        assert_eq!(read, Ok(Some(s)));
        let other = [("other@example.org", "x"), (SERIAL, "7")];
        assert_eq!(
            Stamp::from_notations(other),
            Ok(Some(Stamp {
                serial: 7,
                valid_until: None
            }))
        );
        assert_eq!(Stamp::from_notations([("a@b", "1")]), Ok(None));
        for (bad, part) in [
            (vec![(SERIAL, "")], "not a serial"),
            (vec![(SERIAL, "01")], "not a serial"),
            (vec![(SERIAL, "-1")], "not a serial"),
            (vec![(SERIAL, "+1")], "not a serial"),
            (vec![(SERIAL, "18446744073709551616")], "not a serial"),
            (vec![(SERIAL, "1 ")], "not a serial"),
            (vec![(SERIAL, "1"), (SERIAL, "2")], "twice"),
            (vec![(VALID_UNTIL, "2030-01-01T00:00:00Z")], "without"),
            (vec![(SERIAL, "1"), (VALID_UNTIL, "tomorrow")], "not a time"),
        ] {
            let e = Stamp::from_notations(bad.clone()).unwrap_err();
            assert!(e.contains(part), "{bad:?}: {e}");
        }
    }
}
