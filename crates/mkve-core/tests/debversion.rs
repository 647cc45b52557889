//! mkve's dpkg version comparison against `dpkg --compare-versions` itself,
//! on a few thousand pairs: hand-made ones (epochs, tildes, revisions,
//! letters, leading zeros) and the real versions of this host's Debian 12
//! Packages files (apt's lists, read through apt-helper, which
//! decompresses them whatever apt stored).

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Ordering;
use std::process::Command;

use mkve_core::debversion::compare;

/// dpkg's answer for a and b: Less, Equal or Greater.
fn dpkg(a: &str, b: &str) -> Ordering {
    let is = |op: &str| {
        Command::new("dpkg")
            .args(["--compare-versions", a, op, b])
            .status()
            .unwrap()
            .success()
    };
    if is("lt") {
        Ordering::Less
    } else if is("eq") {
        Ordering::Equal
    } else {
        Ordering::Greater
    }
}

/// The distinct versions of the host's apt lists (Packages files), in
/// their order.
fn real_versions() -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir("/var/lib/apt/lists")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.to_string_lossy().contains("_Packages"));
    files.sort();
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for f in files {
        let text = Command::new("/usr/lib/apt/apt-helper")
            .arg("cat-file")
            .arg(&f)
            .output()
            .unwrap();
        for l in String::from_utf8_lossy(&text.stdout).lines() {
            if let Some(v) = l.strip_prefix("Version: ") {
                if seen.insert(v.to_string()) {
                    out.push(v.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn versions_compare_as_dpkg_compares_them() {
    let made = [
        "0",
        "1",
        "1.0",
        "1.0-1",
        "1.0-0",
        "1:1.0",
        "0:1.0",
        "2:0.1",
        "1.0~rc1",
        "1.0~rc1-1",
        "1.0~~",
        "1.0~",
        "1.0a",
        "1.0+",
        "1.0.",
        "1.0-1ubuntu1",
        "1.0-1~bpo11+1",
        "1.01",
        "1.001",
        "1.0-1+b1",
        "1.0-1+deb12u1",
        "1.0-1+deb12u10",
        "1.0-1+deb12u9",
        "10",
        "9",
        "a",
        "A",
        "1.0-a",
        "1.0-1.1",
        "1.0-1-1",
        "1.2.3-4-5",
        "1.0+dfsg",
        "1.0+dfsg-1~exp1",
        "7.88.1-10+deb12u5",
        "1:2.36-9+deb12u10",
        "2.36-9+deb12u4",
        "3.0.22-1~deb12u2",
        "252.39-1~deb12u2",
        "1:1.2.13.dfsg-1+deb12u1",
        "2026f-0+deb12u1",
        "0~20240101",
    ];
    let mut pairs: Vec<(String, String)> = Vec::new();
    for a in made {
        for b in made {
            pairs.push((a.into(), b.into()));
        }
    }
    let real = real_versions();
    assert!(
        real.len() > 1000,
        "the host's apt lists: {} versions (apt-get update)",
        real.len()
    );
    // Neighbours in the lists (versions of one package, and of
    // packages next to each other) and a spread across all of them.
    for w in real.windows(2).take(1500) {
        pairs.push((w[0].clone(), w[1].clone()));
    }
    let step = real.len() / 500;
    for i in 0..500 {
        let (a, b) = (&real[i * step], &real[(i * 7919 + 13) % real.len()]);
        pairs.push((a.clone(), b.clone()));
    }
    let mut checked = 0;
    for (a, b) in &pairs {
        let ours = compare(a, b).unwrap_or_else(|| panic!("{a:?} or {b:?} does not parse"));
        assert_eq!(ours, dpkg(a, b), "{a} vs {b}");
        checked += 1;
    }
    assert!(checked >= 3500, "{checked} pairs");
    eprintln!("{checked} pairs compared as dpkg compares them");
}
