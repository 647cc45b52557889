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
            v.push((VALID_UNTIL, rfc3339(t)));
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
            Some(v) => Some(parse_rfc3339(v).ok_or_else(|| {
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

/// `secs` since 1970 as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    crate::bundle::meta::rfc3339(secs)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (years 1970 to 9999) as seconds since 1970, or
/// `None` for anything else, a date that does not exist included.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if y < 1970 || !(1..=12).contains(&m) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d < 1 || d > days_in[(m - 1) as usize] {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_back_as_they_are_written() {
        for t in [
            0,
            86_399,
            951_782_400,
            1_700_000_000,
            4_102_444_800,
            253_402_300_799,
        ] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t), "{}", rfc3339(t));
        }
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "",
            "1900-02-29T00:00:00Z",
            "2001-02-29T00:00:00Z",
            "2000-13-01T00:00:00Z",
            "2000-00-01T00:00:00Z",
            "2000-01-32T00:00:00Z",
            "2000-01-01T24:00:00Z",
            "2000-01-01T00:60:00Z",
            "2000-01-01T00:00:60Z",
            "2000-01-01 00:00:00Z",
            "2000-01-01T00:00:00",
            "2000-01-01T00:00:00+00:00",
            "+000-01-01T00:00:00Z",
            "2000-1-01T00:00:00Z ",
            "２000-01-01T00:00:0Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

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
