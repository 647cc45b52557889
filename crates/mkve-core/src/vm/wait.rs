//! Telling that a machine's service is up: its template's probes
//! (`conf/probes`, see probe.rs), run from the node against the machine's
//! address, by `info` once and by `wait` until they answer.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::lookup::find;
use super::{Machine, MachineState, Uris};
use crate::error::{Error, Result};
use crate::probe::{self, Outcome, Probe};
use crate::report::Report;

/// How long one probe may take in one round.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Between two rounds of the probes not yet up.
const ROUND: Duration = Duration::from_secs(1);

/// The probes the machine's bundle declared (kept in
/// `$MKVE_STATEDIR/vms/ID/conf/probes`); none for a machine whose bundle
/// had none or whose files mkve does not keep (OpenVZ).
pub fn probes_of(m: &Machine) -> Result<Vec<Probe>> {
    probe::of_dir(
        &super::layout::machine_dir(m.id),
        &format!("machine {}", m.id),
    )
}

fn address(m: &Machine) -> Result<Ipv4Addr> {
    m.address.parse().map_err(|_| Error::Unavailable {
        what: format!("machine {}", m.id),
        why: "it has no address on the mkve network".into(),
    })
}

/// Run every probe of `m` once; a machine that is not running is not
/// probed (each says so).
pub fn probe_once(m: &Machine) -> Result<Vec<Outcome>> {
    let probes = probes_of(m)?;
    let running = m.state == MachineState::Running;
    let addr = if running { address(m).ok() } else { None };
    Ok(probes
        .iter()
        .map(|p| match addr {
            Some(a) => p.run(a, PROBE_TIMEOUT),
            None => Outcome {
                probe: p.text.clone(),
                up: false,
                detail: format!("not probed: the machine is {}", m.state),
            },
        })
        .collect())
}

/// Whether anything at `addr` answers: a TCP connection accepted or
/// refused (a refusal comes from the machine's own stack).
fn host_answers(addr: Ipv4Addr, timeout: Duration) -> std::result::Result<(), String> {
    match TcpStream::connect_timeout(&SocketAddr::from((addr, 9)), timeout) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(format!("{addr}: {e}")),
    }
}

/// Wait until every probe of every machine in `targets` answers (a machine
/// without probes: until its address answers), for `timeout` in all.
/// Errors: a machine that is not there (2) or not running (69); the time
/// is up (69, naming what is still silent and its last answer).
pub fn wait(uris: &Uris, targets: &[String], timeout: Duration, report: &dyn Report) -> Result<()> {
    // A timeout past what the clock can say is no deadline at all.
    let deadline = Instant::now().checked_add(timeout);
    let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
    for target in targets {
        let (_, d, m) = find(uris, target)?;
        let what = format!("machine {}", m.id);
        let addr = address(&m)?;
        let probes = probes_of(&m)?;
        let mut silent: Vec<(usize, String)> = (0..probes.len().max(1))
            .map(|i| (i, String::from("not asked yet")))
            .collect();
        loop {
            if !d.is_active()? {
                return Err(Error::Unavailable {
                    what,
                    why: "not running: mkve-vm start it first".into(),
                });
            }
            silent.retain_mut(|(i, last)| {
                // Each probe gets what is left of the time, 3 s at most.
                let each = left()
                    .unwrap_or(PROBE_TIMEOUT)
                    .clamp(Duration::from_millis(100), PROBE_TIMEOUT);
                let result = match probes.get(*i) {
                    Some(p) => {
                        let o = p.run(addr, each);
                        if o.up {
                            report.note(&format!("{what}: {}: {}", o.probe, o.detail));
                        }
                        o.up.then_some(()).ok_or(o.detail)
                    }
                    None => host_answers(addr, each),
                };
                match result {
                    Ok(()) => false,
                    Err(why) => {
                        *last = why;
                        true
                    }
                }
            });
            let Some((i, last)) = silent.first() else {
                break;
            };
            if left().is_some_and(|l| l.is_zero()) {
                let probe = match probes.get(*i) {
                    Some(p) => format!("probe \"{}\"", p.text),
                    None => format!("{addr} (its bundle declares no probes)"),
                };
                let more = match silent.len() {
                    1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                };
                return Err(Error::Unavailable {
                    what,
                    why: format!(
                        "{probe} still silent after {} s{more}: {last}",
                        timeout.as_secs()
                    ),
                });
            }
            std::thread::sleep(left().map_or(ROUND, |l| ROUND.min(l)));
        }
        report.progress(&format!("{what} is up"));
    }
    Ok(())
}
