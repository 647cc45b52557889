//! Creating machines from uploaded bundles.
//!
//! An upload is streamed to disk as it comes (never held in memory), under
//! `--max-upload`, into a directory of its own in `uploads/`, under the
//! file name it was sent with; the bundle's meta.json and signature are
//! read at once (so the page can offer what suits its hypervisor and ask
//! for its template's parameters), then `vm::create` makes the machine,
//! the same call and checks as `mkve-vm create`, in a job whose progress
//! lines the page shows. Errors name the bundle as the operator sent it,
//! so they read as `mkve-vm create NAME` would print them.
//!
//! The options come from form fields named after mkve-vm create's options
//! (`memory`, `vcpus`, `cpu_shares`, …, `param.NAME` or `param=NAME=VALUE`):
//! [`create_options`] is the one place they become a `CreateOptions`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Multipart, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use mkve_core::access::Access;
use mkve_core::bundle::{self, Check, ReadOptions};
use mkve_core::hypervisor::Hypervisor;
use mkve_core::ids::MachineId;
use mkve_core::params::{self, Given, Param};
use mkve_core::report::Report;
use mkve_core::sign::SigStatus;
use mkve_core::vm::{
    self, BlkioWeight, CpuShares, CreateOptions, DiskFormat, DiskSize, MachineName, Memory, Vcpus,
};
use mkve_core::{Error, Result};
use tokio::io::AsyncWriteExt;

use crate::app::{blocking, Shared};
use crate::auth::Caller;

/// How long an upload waits for its create.
const UPLOAD_TTL: Duration = Duration::from_secs(3600);

/// The form fields of a create, in order (repeated names kept).
pub type Fields = Vec<(String, String)>;

/// A bundle uploaded and read, waiting for its create options.
pub struct Upload {
    /// Its directory in `uploads/`, removed with it.
    dir: PathBuf,
    /// The bundle's path on disk.
    pub path: PathBuf,
    /// The file name it was sent with.
    pub name: String,
    pub size: u64,
    pub meta: bundle::Meta,
    pub signature: SigStatus,
    pub params: Vec<Param>,
    at: Instant,
}

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = mkve_core::scratch::remove_tree(&self.dir);
    }
}

/// Machines made here and the signature of their bundle, kept in
/// `signatures.json`: the machines page says "verified" only for a machine
/// whose bundle mkve-web checked (by ID and the digest of its root, so a
/// machine made later under the same ID by another tool is not taken for
/// it). Machines made by `mkve-vm create` show as unknown.
pub struct Signatures {
    path: PathBuf,
    map: Mutex<HashMap<u32, (String, String)>>,
}

impl Signatures {
    pub fn open(path: &Path) -> Signatures {
        let map = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Signatures {
            path: path.to_path_buf(),
            map: Mutex::new(map),
        }
    }

    fn record(&self, id: MachineId, digest: &str, sig: &SigStatus) {
        let Ok(mut m) = self.map.lock() else { return };
        m.insert(id.get(), (digest.to_string(), sig.describe()));
        if let Ok(text) = serde_json::to_vec(&*m) {
            let tmp = self.path.with_extension("tmp");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &self.path);
            }
        }
    }

    /// What was checked of machine `id`'s bundle, if mkve-web made it
    /// from the bundle whose root has `digest`.
    pub fn of(&self, id: MachineId, digest: &str) -> Option<String> {
        let m = self.map.lock().ok()?;
        m.get(&id.get())
            .filter(|(d, _)| !d.is_empty() && d == digest)
            .map(|(_, s)| s.clone())
    }
}

/// A create running: its progress lines and, once done, its result.
pub struct Job {
    pub what: String,
    /// Notes and programs' output go to stderr too (`-v`).
    pub verbose: bool,
    pub lines: Mutex<Vec<String>>,
    pub done: Mutex<Option<std::result::Result<MachineId, String>>>,
    pub started: Instant,
}

impl Report for Job {
    fn progress(&self, msg: &str) {
        if let Ok(mut l) = self.lines.lock() {
            l.push(msg.to_string());
        }
    }

    fn warning(&self, msg: &str) {
        self.progress(&format!("warning: {msg}"));
    }

    fn note(&self, msg: &str) {
        if self.verbose {
            eprintln!("{}", mkve_core::text::printable(msg));
        }
    }

    fn verbose(&self) -> bool {
        self.verbose
    }

    fn output(&self, bytes: &[u8]) {
        use std::io::Write;
        let _ = std::io::stderr().write_all(bytes);
    }
}

impl Job {
    fn new(what: String, verbose: bool) -> Arc<Job> {
        Arc::new(Job {
            what,
            verbose,
            lines: Mutex::new(Vec::new()),
            done: Mutex::new(None),
            started: Instant::now(),
        })
    }
}

#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Arc<Job>>>,
}

impl Jobs {
    fn add(&self, what: String, verbose: bool) -> (u64, Arc<Job>) {
        let n = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let job = Job::new(what, verbose);
        if let Ok(mut m) = self.map.lock() {
            // Jobs done an hour ago are forgotten.
            m.retain(|_, j| j.started.elapsed() < UPLOAD_TTL);
            m.insert(n, job.clone());
        }
        (n, job)
    }

    pub fn get(&self, n: u64) -> Option<Arc<Job>> {
        self.map.lock().ok()?.get(&n).cloned()
    }
}

/// The file name an upload is kept under: the last part of what the
/// browser sent, in letters, digits and `._-` (others become `_`);
/// `bundle.bun` when nothing is left.
fn safe_name(sent: Option<&str>) -> String {
    let base = sent
        .unwrap_or("")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>();
    let base = base.trim_start_matches('.');
    if base.is_empty() {
        "bundle.bun".into()
    } else {
        base.chars().take(200).collect()
    }
}

/// `e` with the upload's path on disk replaced by the name it was sent
/// with: what `mkve-vm create NAME` prints, run where the file is.
pub fn reword(e: &Error, path: &Path, name: &str) -> String {
    e.to_string().replace(&path.display().to_string(), name)
}

/// An upload in progress: the directory and file it is written to.
struct Incoming {
    dir: PathBuf,
    path: PathBuf,
    name: String,
    size: u64,
}

/// Stream the multipart field `field` (the bundle) to a new directory in
/// `uploads/`. Errors: larger than the cap (2, naming it), the disk full
/// (73), the client gone (1).
async fn receive(app: &Shared, mut field: axum::extract::multipart::Field<'_>) -> Result<Incoming> {
    let uploads = app.config.dir.join("uploads");
    crate::files::private_dir(&uploads)?;
    let token = crate::auth::random_hex(16).map_err(Error::Other)?;
    let dir = uploads.join(&token);
    crate::files::private_dir(&dir)?;
    let name = safe_name(field.file_name());
    let path = dir.join(&name);
    let cleanup = |e: Error| {
        let _ = mkve_core::scratch::remove_tree(&dir);
        e
    };
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| cleanup(Error::create(&path, e)))?;
    let mut size: u64 = 0;
    let max = app.config.max_upload;
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => return Err(cleanup(Error::Other(format!("{name}: upload: {e}")))),
        };
        size += chunk.len() as u64;
        if size > max {
            return Err(cleanup(Error::Usage(format!(
                "{name}: larger than the {} MiB an upload may be (mkve-web --max-upload)",
                max >> 20
            ))));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| cleanup(Error::io(&path, e)))?;
    }
    file.flush()
        .await
        .map_err(|e| cleanup(Error::io(&path, e)))?;
    Ok(Incoming {
        dir,
        path,
        name,
        size,
    })
}

/// Read an upload's meta.json, signature and `conf/` members (its root is
/// read in the create): what the options page shows. Errors: not a bundle,
/// tampered meta.json or signature (65), its path reworded by the caller.
fn inspect(app: &Shared, inc: Incoming) -> Result<Upload> {
    let keyring = app
        .config
        .keyring
        .clone()
        .unwrap_or_else(mkve_core::paths::default_keyring);
    let file = std::fs::File::open(&inc.path).map_err(|e| Error::io(&inc.path, e))?;
    let report = bundle::read(
        file,
        &inc.path,
        &ReadOptions {
            keyring: Some(&keyring),
            require_signature: false,
            allow_unsigned: true,
            check: Check::Conf,
            unpack_to: None,
            skip_root: None,
        },
    )?;
    let params = match report.conf.get(params::MEMBER) {
        Some(text) => params::parse(text, &inc.path.join(params::MEMBER))
            .map_err(|mut p| Error::InvalidBundle(p.remove(0)))?,
        None => Vec::new(),
    };
    let Incoming {
        dir,
        path,
        name,
        size,
    } = inc;
    Ok(Upload {
        dir,
        path,
        name,
        size,
        meta: report.meta,
        signature: report.signature,
        params,
        at: Instant::now(),
    })
}

/// The one way form fields become `vm::create`'s options, for the page and
/// the API alike; each value is checked by its core type, as mkve-vm's
/// command line checks it. Fields: `hypervisor`, `id`, `name`, `memory`
/// (default 512M), `vcpus` (1), `cpu_shares`, `blkio_weight`,
/// `disk_format` (qcow2 on a base, raw without), `disk_size`, `no_base`,
/// `vnc`, `start`, `allow_unsigned`
/// (checkboxes: present and not `false`/`off`/`0`), `root_password`,
/// `ssh_key` (the text of a public key file), `param.NAME` = VALUE or
/// `param` = NAME=VALUE; empty fields are not given. Errors: a bad value
/// (2), a bad password or key (65), each naming its field.
pub fn create_options(
    bundle: PathBuf,
    fields: &[(String, String)],
    config: &crate::app::Config,
) -> Result<CreateOptions> {
    let get = |k: &str| {
        fields
            .iter()
            .rev()
            .find(|(n, v)| n == k && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    let flag = |k: &str| get(k).is_some_and(|v| !matches!(v, "false" | "off" | "0" | "no"));
    fn parsed<T: std::str::FromStr<Err = String>>(k: &str, v: Option<&str>) -> Result<Option<T>> {
        v.map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|e| Error::Usage(format!("--{}: {e}", k.replace('_', "-"))))
        })
        .transpose()
    }
    let hypervisor = match get("hypervisor") {
        Some(h) => Some(
            h.parse::<Hypervisor>()
                .map_err(|e| Error::Usage(format!("--hypervisor: {e}")))?,
        ),
        None => None,
    };
    let mut given = Vec::new();
    for (n, v) in fields {
        if let Some(name) = n.strip_prefix("param.") {
            if !v.is_empty() {
                given.push(
                    Given::parse(&format!("{name}={v}"), false)
                        .map_err(|e| Error::Usage(format!("--param: {e}")))?,
                );
            }
        } else if n == "param" && !v.is_empty() {
            given.push(Given::parse(v, false).map_err(|e| Error::Usage(format!("--param: {e}")))?);
        }
    }
    let access = Access::from_texts(
        get("root_password").map(|p| (Path::new("root password"), p)),
        get("ssh_key").map(|k| (Path::new("SSH key"), k)),
    )?;
    Ok(CreateOptions {
        bundle,
        hypervisor,
        id: parsed::<MachineId>("id", get("id"))?,
        name: parsed::<MachineName>("name", get("name"))?,
        memory: parsed::<Memory>("memory", get("memory"))?
            .map_or_else(|| "512M".parse().map_err(Error::Usage), Ok)?,
        vcpus: parsed::<Vcpus>("vcpus", get("vcpus"))?
            .map_or_else(|| "1".parse().map_err(Error::Usage), Ok)?,
        cpu_shares: parsed::<CpuShares>("cpu_shares", get("cpu_shares"))?,
        blkio_weight: parsed::<BlkioWeight>("blkio_weight", get("blkio_weight"))?,
        vnc: flag("vnc"),
        connect: config.connect.clone(),
        keyring: config.keyring.clone(),
        allow_unsigned: flag("allow_unsigned"),
        start: flag("start"),
        access,
        disk_format: parsed::<DiskFormat>("disk_format", get("disk_format"))?,
        disk_size: parsed::<DiskSize>("disk_size", get("disk_size"))?,
        params: params::read_given(&given)?,
        no_base: flag("no_base"),
        // A node that does not answer stops a create from the web: the
        // operator who means to go on says so on the command line.
        local_ids: false,
    })
}

/// Why a create failed: the HTTP status and exit status of its error,
/// and its message in the CLI's words.
pub struct Failure {
    pub status: StatusCode,
    pub exit: i32,
    pub message: String,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "exit": self.exit });
        (self.status, axum::Json(body)).into_response()
    }
}

fn failure(e: &Error, path: &Path, name: &str) -> Failure {
    Failure {
        status: crate::app::status_of(e),
        exit: e.exit_code(),
        message: reword(e, path, name),
    }
}

/// Create the machine of `upload` with `fields`, reporting to `report`;
/// logged as `create NAME` by `user`, errors in the CLI's words.
async fn run_create(
    app: &Shared,
    user: &str,
    upload: Upload,
    fields: Fields,
    report: Arc<dyn Report + Send + Sync>,
) -> std::result::Result<MachineId, Failure> {
    let what = format!("create {}", upload.name);
    let (path, name) = (upload.path.clone(), upload.name.clone());
    let config = app.config.clone();
    let digest = upload
        .meta
        .members
        .get(bundle::ROOTFS)
        .cloned()
        .unwrap_or_default();
    let sig = upload.signature.clone();
    let r = blocking(move || {
        let o = create_options(upload.path.clone(), &fields, &config)?;
        let id = vm::create(&o, &*report);
        drop(upload);
        id
    })
    .await;
    match r {
        Ok(id) => {
            app.signatures.record(id, &digest, &sig);
            app.log.record(user, &format!("{what}: machine {id}"), None);
            Ok(id)
        }
        Err(e) => {
            let f = failure(&e, &path, &name);
            app.log.push(crate::log::Entry {
                time: crate::log::now(),
                user: user.to_string(),
                action: what,
                result: "failed".into(),
                error: f.message.clone(),
            });
            Err(f)
        }
    }
}

/// Receive the multipart field named `bundle` and read it; the other
/// fields are returned as they are. Errors: no bundle (2), and those of
/// `receive` and `inspect` (the path reworded).
async fn take_upload(
    app: &Shared,
    user: &str,
    mut mp: Multipart,
) -> std::result::Result<(Upload, Fields), Failure> {
    let mut fields = Vec::new();
    let mut incoming = None;
    let usage = |message: String| Failure {
        status: StatusCode::BAD_REQUEST,
        exit: 2,
        message,
    };
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(usage(format!("upload: {e}"))),
        };
        let n = field.name().unwrap_or("").to_string();
        if n == "bundle" && incoming.is_none() {
            match receive(app, field).await {
                Ok(i) => incoming = Some(i),
                Err(e) => {
                    app.log.record(user, "upload", Some(&e));
                    return Err(failure(&e, Path::new(""), ""));
                }
            }
        } else {
            let v = field.text().await.map_err(|e| usage(format!("{n}: {e}")))?;
            fields.push((n, v));
        }
    }
    let Some(inc) = incoming else {
        return Err(usage(
            "no bundle: send the file as the field \"bundle\"".into(),
        ));
    };
    let (path, name) = (inc.path.clone(), inc.name.clone());
    let dir = inc.dir.clone();
    let app2 = app.clone();
    match blocking(move || inspect(&app2, inc)).await {
        Ok(u) => Ok((u, fields)),
        Err(e) => {
            let _ = mkve_core::scratch::remove_tree(&dir);
            let f = failure(&e, &path, &name);
            app.log.push(crate::log::Entry {
                time: crate::log::now(),
                user: user.to_string(),
                action: format!("upload {name}"),
                result: "failed".into(),
                error: f.message.clone(),
            });
            Err(f)
        }
    }
}

/// Forget uploads older than an hour (their files go with them).
fn sweep(app: &Shared) {
    if let Ok(mut m) = app.uploads.lock() {
        m.retain(|_, u| u.at.elapsed() < UPLOAD_TTL);
    }
}

/// Remove what earlier runs left in `uploads/` (a restart forgets them).
pub fn clear_uploads(dir: &Path) {
    let _ = mkve_core::scratch::remove_tree(&dir.join("uploads"));
}

/// GET /create: the upload form.
pub async fn form_page(State(app): State<Shared>, Extension(c): Extension<Caller>) -> Response {
    Html(crate::pages::create_form(&c, app.config.max_upload).into_string()).into_response()
}

/// POST /create: the bundle, streamed to disk and read; then its options
/// page (`/create/TOKEN`), or why it was refused.
pub async fn upload_page(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    mp: Multipart,
) -> Response {
    sweep(&app);
    match take_upload(&app, &c.user, mp).await {
        Ok((u, _)) => {
            let token = match crate::auth::random_hex(16) {
                Ok(t) => t,
                Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
            };
            if let Ok(mut m) = app.uploads.lock() {
                m.insert(token.clone(), u);
            }
            crate::pages::redirect(&headers, &format!("/create/{token}"))
        }
        Err(f) if headers.contains_key("hx-request") => (
            f.status,
            Html(crate::pages::error(&f.message).into_string()),
        )
            .into_response(),
        Err(f) => (
            f.status,
            Html(crate::pages::refused(&c, "The bundle was refused", &f.message).into_string()),
        )
            .into_response(),
    }
}

/// GET /create/TOKEN: what the bundle is, and the options that suit it.
pub async fn options_page(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(token): UrlPath<String>,
) -> Response {
    let m = match app.uploads.lock() {
        Ok(m) => m,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    match m.get(&token) {
        Some(u) => Html(crate::pages::create_options(&c, &token, u).into_string()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Html(
                crate::pages::refused(
                    &c,
                    "No such upload",
                    "it was used or has expired: upload the bundle again",
                )
                .into_string(),
            ),
        )
            .into_response(),
    }
}

/// POST /create/TOKEN: start the create; its job's page.
pub async fn start_job(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(token): UrlPath<String>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    let upload = app.uploads.lock().ok().and_then(|mut m| m.remove(&token));
    let Some(upload) = upload else {
        return (
            StatusCode::NOT_FOUND,
            "no such upload: upload the bundle again\n",
        )
            .into_response();
    };
    let (n, job) = app
        .jobs
        .add(format!("create {}", upload.name), app.config.verbose);
    let app2 = app.clone();
    let user = c.user.clone();
    tokio::spawn(async move {
        let report: Arc<dyn Report + Send + Sync> = job.clone();
        let r = run_create(&app2, &user, upload, fields, report)
            .await
            .map_err(|f| f.message);
        if let Ok(mut d) = job.done.lock() {
            *d = Some(r);
        }
    });
    crate::pages::redirect(&headers, &format!("/jobs/{n}"))
}

/// GET /jobs/N: a create's progress, refreshed until it ends.
pub async fn job_page(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(n): UrlPath<u64>,
) -> Response {
    match app.jobs.get(n) {
        Some(j) => Html(crate::pages::job(&c, n, &j).into_string()).into_response(),
        None => (StatusCode::NOT_FOUND, "no such job\n").into_response(),
    }
}

/// GET /jobs/N/status: the job's progress as a fragment.
pub async fn job_status(State(app): State<Shared>, UrlPath(n): UrlPath<u64>) -> Response {
    match app.jobs.get(n) {
        Some(j) => Html(crate::pages::job_status(n, &j).into_string()).into_response(),
        None => (StatusCode::NOT_FOUND, "no such job\n").into_response(),
    }
}

/// POST /api/machines: a bundle and its options in one multipart request
/// (`bundle` the file, the other fields as [`create_options`] reads
/// them); `201 {"id": N}` once the machine is made, or the error.
pub async fn api_create(app: &Shared, user: &str, mp: Multipart) -> Response {
    sweep(app);
    let (upload, fields) = match take_upload(app, user, mp).await {
        Ok(x) => x,
        Err(f) => return f.into_response(),
    };
    let report: Arc<dyn Report + Send + Sync> =
        Job::new(format!("create {}", upload.name), app.config.verbose);
    match run_create(app, user, upload, fields, report).await {
        Ok(id) => (
            StatusCode::CREATED,
            [(axum::http::header::LOCATION, format!("/api/machines/{id}"))],
            axum::Json(serde_json::json!({ "id": id })),
        )
            .into_response(),
        Err(f) => f.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn config() -> crate::app::Config {
        crate::app::Config::new(vm::uris(Some("test:///default")).unwrap())
    }

    #[test]
    fn names_of_uploads_stay_in_their_directory() {
        assert_eq!(safe_name(Some("ntp.bun")), "ntp.bun");
        assert_eq!(safe_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(safe_name(Some("C:\\x\\a b.bun")), "a_b.bun");
        assert_eq!(safe_name(Some("..")), "bundle.bun");
        assert_eq!(safe_name(Some(".hidden")), "hidden");
        assert_eq!(safe_name(None), "bundle.bun");
    }

    #[test]
    fn fields_become_the_options_mkve_vm_would_make() {
        let o = create_options(
            "b.bun".into(),
            &fields(&[
                ("memory", "1G"),
                ("vcpus", "2"),
                ("cpu_shares", "512"),
                ("blkio_weight", ""),
                ("start", "on"),
                ("root_password", "s3cret"),
                ("param.admin", "x y"),
                ("param", "other=1"),
            ]),
            &config(),
        )
        .unwrap();
        assert_eq!(o.memory.mib(), 1024);
        assert_eq!(o.vcpus.get(), 2);
        assert_eq!(o.cpu_shares.map(CpuShares::get), Some(512));
        assert!(o.blkio_weight.is_none());
        assert!(o.start && !o.allow_unsigned && !o.vnc);
        assert!(!o.access.is_empty());
        assert_eq!(
            o.params,
            vec![
                ("admin".to_string(), "x y".to_string()),
                ("other".to_string(), "1".to_string())
            ]
        );
        let defaults = create_options("b.bun".into(), &[], &config()).unwrap();
        assert_eq!(defaults.memory.mib(), 512);
        assert_eq!(defaults.vcpus.get(), 1);
    }

    #[test]
    fn bad_fields_are_refused_as_the_cli_refuses_them() {
        let refused =
            |f: &[(&str, &str)]| match create_options("b.bun".into(), &fields(f), &config()) {
                Err(e) => e,
                Ok(_) => panic!("{f:?} accepted"),
            };
        let e = refused(&[("memory", "1X")]);
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("--memory: "), "{e}");
        let e = refused(&[("ssh_key", "nope")]);
        assert_eq!(e.exit_code(), 65);
        assert!(e.to_string().contains("not an OpenSSH public key"), "{e}");
        let e = refused(&[("param", "a=1"), ("param.a", "2")]);
        assert_eq!(e.to_string(), "parameter a is given twice");
    }
}
