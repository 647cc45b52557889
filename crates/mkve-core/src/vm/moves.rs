//! A move's mark on its source and the resolution of a killed move: the
//! rule is in migrate.rs's documentation. [`Mark`] is written by the
//! source (`migrate.rs`); [`resume`] resolves one left over, from the next
//! command that takes the machine's lock (`manage.rs`), the move's watcher
//! (`finish_move`) or a listing that warns of it (`interrupted_moves`).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::layout::{ids_named, moving_mark, vms_dir, MOVING};
use super::remote::{remote_failure, ssh_command};
use super::Uris;
use crate::error::{Error, Result};
use crate::exec::Report;
use crate::ids::MachineId;
use crate::libvirt::Dom;
use crate::lock::{Lock, Mode};
use crate::nodes::Nodes;

/// The mark of a move on its source, `vms/ID.moving`: beside the
/// machine's directory (it outlives it), written before the machine is
/// stopped, removed last. One line of JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Mark {
    /// The node it moves to, as mkve.conf names it.
    pub to: String,
    /// Its domain's UUID (the same there: the XML keeps it).
    pub uuid: String,
    /// It ran before the move.
    pub running: bool,
    /// The seconds it was given to shut down when asked to (0: the plug
    /// was pulled, or it did not run): a machine found running is
    /// waited for that long after the mark was written, as it may be
    /// going down.
    #[serde(default)]
    pub shutdown: u64,
    pub step: Step,
}

/// How far a move went, as its [`Mark`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Step {
    /// The target has not been told to keep it: the copy here is the
    /// machine.
    Moving,
    /// The target is being told to keep it: it holds the machine if it
    /// heard.
    Committing,
}

impl Mark {
    /// Write it at `path`, by a temporary name, synced, then renamed.
    /// Errors: the file cannot be written (73).
    pub(super) fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("moving.tmp");
        let mut text = serde_json::to_vec(self).map_err(|e| Error::Other(e.to_string()))?;
        text.push(b'\n');
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&text).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, path));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::create(path, e)
        })
    }

    /// The mark at `path`; `None` when there is none. Errors: it cannot be
    /// read, or is not a mark (1, naming the file).
    pub(super) fn read(path: &Path) -> Result<Option<Mark>> {
        match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                Error::Other(format!(
                    "{}: not the mark of a move ({e}): remove it once the machine is where it should be",
                    path.display()
                ))
            }),
        }
    }
}

/// The moves on this node, as their source, that were interrupted: a
/// mark left and no run holding the machine's lock. Each machine's ID
/// and the node it was moving to, by ID.
pub fn interrupted_moves() -> Vec<(MachineId, String)> {
    let vms = vms_dir();
    let mut out = Vec::new();
    for id in ids_named(&vms, MOVING) {
        let Ok(id) = MachineId::new(id) else {
            continue;
        };
        let Ok(Some(_lock)) = Lock::try_acquire(&format!("machine-{id}.lock"), Mode::Exclusive)
        else {
            continue; // a move or another command holds it now
        };
        if let Ok(Some(mark)) = Mark::read(&moving_mark(&vms, id.get())) {
            out.push((id, mark.to));
        }
    }
    out.sort();
    out
}

/// What [`resume`] made of an interrupted move.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Resumed {
    /// No move of the machine was interrupted here.
    Nothing,
    /// The machine is the one here, started again if it ran; the move
    /// to this node is forgotten.
    Here(String),
    /// The target took it: the copy here is removed.
    Moved(String),
}

/// Resolve the move of machine `id` that was interrupted on this node, its
/// source, by the rule in migrate.rs's documentation; the caller holds
/// the machine's lock. Errors: the mark is unreadable; the target must be
/// asked and cannot answer (69: nothing is done, the mark stays); libvirt
/// refused to start or remove the copy here.
pub(super) fn resume(uris: &Uris, id: MachineId, report: &dyn Report) -> Result<Resumed> {
    let path = moving_mark(&vms_dir(), id.get());
    let Some(mark) = Mark::read(&path)? else {
        return Ok(Resumed::Nothing);
    };
    let what = format!("machine {id}");
    let (here, any) = super::lookup::by_id(uris, id, &mark.uuid)?;
    if mark.step == Step::Committing {
        let took = arrived_on(&mark, id, report).map_err(|e| Error::Unavailable {
            what: what.clone(),
            why: format!(
                "its move to node {} was interrupted as that node was told to keep it, \
                 and it cannot say whether it did ({e}): nothing is done; \
                 any command on the machine here asks again",
                mark.to
            ),
        })?;
        if took {
            report.progress(&format!(
                "{what} is on node {}: removing what its interrupted move left here",
                mark.to
            ));
            if let Some((_, d, _)) = &here {
                if d.is_active()? {
                    d.destroy(&what)?;
                }
                d.undefine(&what)?;
            }
            if let Some(conn) = here.as_ref().map(|(c, _, _)| c).or(any.as_ref()) {
                super::staging::remove_leftovers(conn, id, report)?;
            }
            remove_mark(&path)?;
            return Ok(Resumed::Moved(mark.to));
        }
    }
    match &here {
        Some((_, d, m)) => {
            if mark.running && d.is_active()? && mark.shutdown > 0 {
                wait_shutdown(d, &path, mark.shutdown, report)?;
            }
            if mark.running && !d.is_active()? {
                report.progress(&format!(
                    "starting {what} again where it was: its move to node {} was interrupted",
                    mark.to
                ));
                super::overlay::prepare_root(m)?;
                d.start(&what)?;
            }
        }
        None => report.warning(&format!(
            "{what}: its move to node {} was interrupted, and its domain is not here",
            mark.to
        )),
    }
    remove_mark(&path)?;
    Ok(Resumed::Here(mark.to))
}

/// Wait for a machine that may be shutting down (a move asked it to, and
/// was killed): until it is off, or `seconds` after the move's mark at
/// `path` was written.
fn wait_shutdown(d: &Dom, path: &Path, seconds: u64, report: &dyn Report) -> Result<()> {
    let since = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default();
    let Some(left) = Duration::from_secs(seconds).checked_sub(since) else {
        return Ok(());
    };
    report.progress(&format!(
        "waiting up to {} s for the machine to finish shutting down, as its move asked",
        left.as_secs()
    ));
    let start = std::time::Instant::now();
    while d.is_active()? && start.elapsed() < left {
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

pub(super) fn remove_mark(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// Whether the node a move of machine `id` went to holds it now (asked
/// there under its lock). Errors: ssh did not reach it (69), it failed
/// there, or answered something else.
fn arrived_on(mark: &Mark, id: MachineId, report: &dyn Report) -> Result<bool> {
    let nodes = Nodes::load()?;
    let node = nodes.get(&mark.to)?;
    let args = ["__arrived".into(), id.to_string(), mark.uuid.clone()];
    let out = ssh_command(&nodes, node, &args, false)?
        .timeout(Duration::from_secs(60))
        .report(report)
        .output()?;
    if !out.status.success() {
        return Err(remote_failure(
            node,
            "saying whether it holds the machine",
            out.status,
            crate::process_error::tail(&out.stderr),
        ));
    }
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(Error::Other(format!(
            "node {}: \"{other}\" where yes or no was expected",
            node.name
        ))),
    }
}

/// The target's answer to [`arrived_on`] (`mkve-vm __arrived ID UUID`):
/// whether machine `id` with the domain UUID `uuid` is defined on `uris`,
/// asked under its lock, so that a `__receive` keeping or undoing it has
/// ended first. Errors: a URI does not answer, libvirt fails.
pub fn arrived(uris: &Uris, id: MachineId, uuid: &str) -> Result<bool> {
    let _lock = crate::ids::machine_lock(id.get())?;
    Ok(super::lookup::by_id(uris, id, uuid)?.0.is_some())
}

/// The watcher a move starts on its source (`mkve-vm __finish-move ID`):
/// it waits for its stdin to end (the move ended, or was killed), then,
/// if the move's mark is left, takes the machine's lock and [`resume`]s
/// it, saying what it did. Errors: those of `resume`.
pub fn finish_move(uris: &Uris, id: MachineId, report: &dyn Report) -> Result<()> {
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    if !moving_mark(&vms_dir(), id.get()).exists() {
        return Ok(());
    }
    let _lock = crate::ids::machine_lock(id.get())?;
    match resume(uris, id, report)? {
        Resumed::Nothing => {}
        Resumed::Here(to) => report.warning(&format!(
            "machine {id}: its move to node {to} was interrupted: it stays here, running if it ran"
        )),
        Resumed::Moved(to) => report.warning(&format!(
            "machine {id}: its move was interrupted after node {to} took it: it runs there, and its copy here is removed"
        )),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Silent;
    use crate::libvirt;
    use crate::libvirt::domain;

    #[test]
    fn a_mark_is_written_read_and_told_apart_from_garbage() {
        let d = tempfile::tempdir().unwrap();
        let path = moving_mark(d.path(), 101);
        assert!(path.ends_with("101.moving"));
        assert_eq!(Mark::read(&path).unwrap(), None);
        let mut mark = Mark {
            to: "n2".into(),
            uuid: "0f1e2d3c-0000-4000-8000-000000000101".into(),
            running: true,
            shutdown: 0,
            step: Step::Moving,
        };
        mark.write(&path).unwrap();
        assert_eq!(Mark::read(&path).unwrap().as_ref(), Some(&mark));
        mark.step = Step::Committing;
        mark.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"step\":\"committing\""), "{text}");
        assert_eq!(Mark::read(&path).unwrap(), Some(mark));
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        std::fs::write(&path, "{\"to\":").unwrap();
        let e = Mark::read(&path).unwrap_err().to_string();
        assert!(e.contains("101.moving: not the mark of a move"), "{e}");
    }

    /// An interrupted move of an mkve machine on the in-process test
    /// driver, resolved by each rule: `moving` starts it again here;
    /// `committing` asks the target (a stand-in for ssh that answers, or
    /// does not): no answer changes nothing, "no" starts it here, "yes"
    /// removes the copy here. A mark whose machine's lock is held is a
    /// move under way, not an interrupted one.
    #[test]
    fn an_interrupted_move_is_resolved_by_its_mark() {
        let _env = crate::testing::ENV
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let d = tempfile::tempdir().unwrap();
        let answer = d.path().join("answer");
        let ssh = d.path().join("ssh");
        crate::testing::write(&ssh, &format!("#!/bin/sh\nexec cat {}\n", answer.display()));
        std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        crate::testing::write(
            &d.path().join("conf/mkve.conf"),
            &format!(
                "this_node=n1\nnode_ssh_command={}\nnode.n1.ids=100-149\n\
                 node.n2.ids=150-199\nnode.n2.ssh=root@n2.invalid\n\
                 node.n2.uri.qemu=qemu+ssh://root@n2.invalid/system\n",
                ssh.display()
            ),
        );
        std::env::set_var("MKVE_CONFDIR", d.path().join("conf"));
        std::env::set_var("MKVE_STATEDIR", d.path().join("state"));
        std::env::set_var("MKVE_LOCKDIR", d.path().join("lock"));
        let id = MachineId::new(141).unwrap();
        let conn = libvirt::connect("test:///default").unwrap();
        let dom = domain::testing::define(&conn, "moving-141", 141, "10.0.0.141".parse().unwrap());
        let uris = Uris {
            list: vec!["test:///default".into()],
            explicit: true,
        };
        let vms = vms_dir();
        std::fs::create_dir_all(vms.join("141")).unwrap();
        let path = moving_mark(&vms, 141);
        let mut mark = Mark {
            to: "n2".into(),
            uuid: dom.uuid().unwrap(),
            running: true,
            shutdown: 0,
            step: Step::Moving,
        };
        assert_eq!(resume(&uris, id, &Silent).unwrap(), Resumed::Nothing);

        mark.write(&path).unwrap();
        {
            let _held = crate::ids::machine_lock(141).unwrap();
            assert!(interrupted_moves().is_empty(), "a move under way");
        }
        assert_eq!(interrupted_moves(), [(id, "n2".to_string())]);
        assert_eq!(
            resume(&uris, id, &Silent).unwrap(),
            Resumed::Here("n2".into())
        );
        assert!(dom.is_active().unwrap(), "started again: it ran");
        assert!(!path.exists() && interrupted_moves().is_empty());
        // Found running, as when a move was killed while the machine shut
        // down: waited for (here 1 s, in vain), then left as it is.
        mark.shutdown = 1;
        mark.write(&path).unwrap();
        let t0 = std::time::Instant::now();
        assert_eq!(
            resume(&uris, id, &Silent).unwrap(),
            Resumed::Here("n2".into())
        );
        assert!(t0.elapsed() >= Duration::from_millis(500));
        assert!(dom.is_active().unwrap() && !path.exists());
        mark.shutdown = 0;

        dom.destroy("moving-141").unwrap();
        mark.step = Step::Committing;
        mark.write(&path).unwrap();
        // No answer (empty): nothing is done, the mark stays.
        std::fs::write(&answer, "").unwrap();
        let e = resume(&uris, id, &Silent).unwrap_err();
        assert_eq!(e.exit_code(), 69, "{e}");
        let text = e.to_string();
        assert!(
            text.contains("nothing is done") && text.contains("where yes or no was expected"),
            "{e}"
        );
        assert!(path.exists() && !dom.is_active().unwrap());
        // The target does not hold it: it is the one here.
        std::fs::write(&answer, "no\n").unwrap();
        assert_eq!(
            resume(&uris, id, &Silent).unwrap(),
            Resumed::Here("n2".into())
        );
        assert!(dom.is_active().unwrap() && !path.exists());
        // The target holds it: the copy here goes, its files and mark too.
        mark.write(&path).unwrap();
        std::fs::write(&answer, "yes\n").unwrap();
        assert_eq!(
            resume(&uris, id, &Silent).unwrap(),
            Resumed::Moved("n2".into())
        );
        assert!(conn.domain("moving-141").is_none());
        assert!(!vms.join("141").exists() && !path.exists());
    }
}
