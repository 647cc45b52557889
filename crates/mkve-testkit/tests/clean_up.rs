//! The clean-up shell `shared_dir` leaves running holds no descriptor of
//! the test process but its own stdin, stdout and stderr: a pipe another
//! thread made without close-on-exec (as gpgme does) must not be kept open
//! by it for the whole run, or that thread waits forever for its end.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn the_clean_up_shell_keeps_no_inherited_descriptor() {
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let pipe = std::fs::read_link(format!("/proc/self/fd/{}", fds[1])).unwrap();
    let dir = mkve_testkit::shared_dir();
    let me = std::process::id().to_string();
    // Looked for again for a few seconds: on a loaded machine /proc may
    // not show the new child at once.
    let find = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| {
                let p = e.path();
                let cmdline = std::fs::read(p.join("cmdline")).unwrap_or_default();
                let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
                let parent = stat
                    .rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(1));
                parent == Some(me.as_str())
                    && cmdline
                        .split(|b| *b == 0)
                        .any(|a| a == b"mkve-tests-clean-up")
            })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let shell = loop {
        match find() {
            Some(e) => break e.path(),
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            None => panic!("the clean-up shell runs as this process's child"),
        }
    };
    let held: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(shell.join("fd"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_link(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        held.iter()
            .all(|(fd, target)| ["0", "1", "2"].contains(&fd.as_str()) || target != &pipe),
        "the shell holds the test's pipe: {held:?}"
    );
    // Its stdin is its own pipe; no other descriptor of it is one (the
    // shell opens /dev/null for itself, which is no one's business).
    assert!(
        held.iter()
            .all(|(fd, target)| fd == "0" || !target.to_string_lossy().starts_with("pipe:")),
        "the shell holds a pipe besides its stdin: {held:?}"
    );
    assert!(dir.is_dir());
    // SAFETY: the two descriptors made above, closed once.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}
