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
use axum::Extension;
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

/// The form fields of a create, in order, their values as sent (bytes:
/// [`create_options`] checks them).
pub type Fields = Vec<(String, Vec<u8>)>;

/// An upload's directory in `uploads/`, removed with everything in it
/// when dropped: an upload refused, cut short or used leaves nothing.
struct UploadDir(PathBuf);

impl Drop for UploadDir {
    fn drop(&mut self) {
        let _ = mkve_core::scratch::remove_tree(&self.0);
    }
}

/// A bundle uploaded and read, waiting for its create options.
pub struct Upload {
    /// Its directory in `uploads/`, removed with it.
    #[allow(dead_code)]
    dir: UploadDir,
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
    dir: UploadDir,
    path: PathBuf,
    name: String,
    size: u64,
}

/// Stream the multipart field `field` (the bundle) to a new directory in
/// `uploads/`, removed again if it fails. Errors: larger than the cap (2,
/// naming it), cut short or malformed (2), the disk full (73).
async fn receive(app: &Shared, mut field: axum::extract::multipart::Field<'_>) -> Result<Incoming> {
    let uploads = app.config.dir.join("uploads");
    crate::files::private_dir(&uploads)?;
    let token = crate::auth::random_hex(16).map_err(Error::Other)?;
    let dir = uploads.join(&token);
    crate::files::private_dir(&dir)?;
    let dir = UploadDir(dir);
    let name = safe_name(field.file_name());
    let path = dir.0.join(&name);
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| Error::create(&path, e))?;
    let mut size: u64 = 0;
    let max = app.config.max_upload;
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| crate::request::multipart_error(&e))?
    {
        size += chunk.len() as u64;
        if size > max {
            return Err(Error::Usage(format!(
                "{name}: larger than the {} MiB an upload may be (mkve-web --max-upload)",
                max >> 20
            )));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| Error::io(&path, e))?;
    }
    file.flush().await.map_err(|e| Error::io(&path, e))?;
    Ok(Incoming {
        dir,
        path,
        name,
        size,
    })
}

/// The value of a form field other than the bundle, read whole up to
/// `request::FIELD_MAX` bytes. Errors (2): longer, cut short or malformed.
async fn field_value(
    mut field: axum::extract::multipart::Field<'_>,
    name: &str,
) -> Result<Vec<u8>> {
    let mut value = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| crate::request::multipart_error(&e))?
    {
        if value.len() + chunk.len() > crate::request::FIELD_MAX {
            return Err(Error::Usage(format!(
                "the field {name} is longer than {} bytes",
                crate::request::FIELD_MAX
            )));
        }
        value.extend_from_slice(&chunk);
    }
    Ok(value)
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
/// command line checks it, with the same words. Fields: `hypervisor`,
/// `id`, `name`, `memory` (default 512M), `vcpus` (1), `cpu_shares`,
/// `blkio_weight`, `disk_format` (qcow2 on a base, raw without),
/// `disk_size`, `no_base`, `vnc`, `start`, `allow_unsigned` (checkboxes:
/// `on`, `true`, `yes`, `1`, or `off`, `false`, `no`, `0`),
/// `root_password`, `ssh_key` (the text of a public key file),
/// `param.NAME` = VALUE or `param` = NAME=VALUE (repeated); empty fields
/// are not given. Errors, each naming its field: a field nobody reads or
/// given twice, a value that is not UTF-8 or not the option's (2); a bad
/// password or key (65).
pub fn create_options(
    bundle: PathBuf,
    fields: &[(String, Vec<u8>)],
    config: &crate::app::Config,
) -> Result<CreateOptions> {
    let dashed = |k: &str| format!("--{}", k.replace('_', "-"));
    let mut seen: Vec<&str> = Vec::new();
    for (n, _) in fields {
        crate::request::field_name(n, &seen)?;
        if n == "bundle" {
            return Err(Error::Usage(
                "the field bundle is the bundle's file, not an option".into(),
            ));
        }
        seen.push(n);
    }
    // Each name is there once at most (but param, read below).
    let text = |k: &str| -> Result<Option<&str>> {
        match fields.iter().find(|(n, v)| n == k && !v.is_empty()) {
            None => Ok(None),
            Some((_, v)) => std::str::from_utf8(v)
                .map(Some)
                .map_err(|_| Error::Usage(format!("{}: not UTF-8", dashed(k)))),
        }
    };
    let flag = |k: &str| -> Result<bool> {
        match text(k)? {
            None | Some("off" | "false" | "no" | "0") => Ok(false),
            Some("on" | "true" | "yes" | "1") => Ok(true),
            Some(v) => Err(Error::Usage(format!(
                "{}: \"{}\" is neither on nor off",
                dashed(k),
                mkve_core::text::printable(v)
            ))),
        }
    };
    // The value as the command line's clap parses it: whole, untrimmed.
    fn typed<T: std::str::FromStr<Err = String>>(k: &str, v: Option<&str>) -> Result<Option<T>> {
        v.map(|v| {
            v.parse::<T>()
                .map_err(|e| Error::Usage(format!("--{}: {e}", k.replace('_', "-"))))
        })
        .transpose()
    }
    let hypervisor = match text("hypervisor")? {
        Some(h) => Some(
            h.parse::<Hypervisor>()
                .map_err(|e| Error::Usage(format!("--hypervisor: {e}")))?,
        ),
        None => None,
    };
    let mut given = Vec::new();
    for (n, v) in fields {
        let arg = match n.strip_prefix("param.") {
            Some(name) => [name.as_bytes(), b"=", v].concat(),
            None if n == "param" => v.clone(),
            None => continue,
        };
        if !v.is_empty() {
            given.push(
                Given::parse_bytes(&arg, false)
                    .map_err(|e| Error::Usage(format!("--param: {e}")))?,
            );
        }
    }
    let access = Access::from_texts(
        text("root_password")?.map(|p| (Path::new("root password"), p)),
        text("ssh_key")?.map(|k| (Path::new("SSH key"), k)),
    )?;
    Ok(CreateOptions {
        bundle,
        hypervisor,
        id: typed::<MachineId>("id", text("id")?)?,
        name: typed::<MachineName>("name", text("name")?)?,
        memory: typed::<Memory>("memory", text("memory")?)?
            .map_or_else(|| "512M".parse().map_err(Error::Usage), Ok)?,
        vcpus: typed::<Vcpus>("vcpus", text("vcpus")?)?
            .map_or_else(|| "1".parse().map_err(Error::Usage), Ok)?,
        cpu_shares: typed::<CpuShares>("cpu_shares", text("cpu_shares")?)?,
        blkio_weight: typed::<BlkioWeight>("blkio_weight", text("blkio_weight")?)?,
        vnc: flag("vnc")?,
        connect: config.connect.clone(),
        keyring: config.keyring.clone(),
        allow_unsigned: flag("allow_unsigned")?,
        start: flag("start")?,
        access,
        disk_format: typed::<DiskFormat>("disk_format", text("disk_format")?)?,
        disk_size: typed::<DiskSize>("disk_size", text("disk_size")?)?,
        params: params::read_given(&given)?,
        no_base: flag("no_base")?,
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
        Err(e) => Err(logged(app, user, what, failure(&e, &path, &name))),
    }
}

/// Record a failure in the action log as `action` by `user`; return it.
fn logged(app: &Shared, user: &str, action: String, f: Failure) -> Failure {
    app.log.push(crate::log::Entry {
        time: crate::log::now(),
        user: user.to_string(),
        action,
        result: "failed".into(),
        error: f.message.clone(),
    });
    f
}

/// Receive a create's multipart form: the field `bundle` streamed to disk
/// (`receive`), the others read whole, each name checked as it comes
/// (`request::field_name`). Errors (2): no bundle, a field refused, a body
/// cut short or malformed; and those of `receive`. Nothing of the upload
/// is left after an error.
async fn take_form(
    app: &Shared,
    user: &str,
    mut mp: Multipart,
) -> std::result::Result<(Incoming, Fields), Failure> {
    let mut fields: Fields = Vec::new();
    let mut incoming = None;
    let refused = |e: Error| {
        app.log.record(user, "upload", Some(&e));
        failure(&e, Path::new(""), "")
    };
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(refused(crate::request::multipart_error(&e))),
        };
        let n = field.name().unwrap_or("").to_string();
        let mut seen: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        if incoming.is_some() {
            seen.push("bundle");
        }
        crate::request::field_name(&n, &seen).map_err(refused)?;
        if n == "bundle" {
            incoming = Some(receive(app, field).await.map_err(refused)?);
        } else {
            let v = field_value(field, &n).await.map_err(refused)?;
            fields.push((n, v));
        }
    }
    let Some(inc) = incoming else {
        return Err(refused(Error::Usage(
            "no bundle: send the file as the field \"bundle\"".into(),
        )));
    };
    Ok((inc, fields))
}

/// Read a received bundle (`inspect`). Errors: those of `inspect`, the
/// path reworded to the name it was sent with, logged as `upload NAME`.
async fn read_upload(
    app: &Shared,
    user: &str,
    inc: Incoming,
) -> std::result::Result<Upload, Failure> {
    let (path, name) = (inc.path.clone(), inc.name.clone());
    let app2 = app.clone();
    blocking(move || inspect(&app2, inc)).await.map_err(|e| {
        logged(
            app,
            user,
            format!("upload {name}"),
            failure(&e, &path, &name),
        )
    })
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
    let upload = match take_form(&app, &c.user, mp).await {
        // The options come on the next page.
        Ok((_, fields)) if !fields.is_empty() => Err(Failure {
            status: StatusCode::BAD_REQUEST,
            exit: 2,
            message: format!(
                "the field {} is given with the bundle: its options come on the next page",
                fields[0].0
            ),
        }),
        Ok((inc, _)) => read_upload(&app, &c.user, inc).await,
        Err(f) => Err(f),
    };
    match upload {
        Ok(u) => {
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
    body: axum::body::Bytes,
) -> Response {
    // Read as bytes, as the API's fields are: create_options checks them.
    let fields: Fields = crate::request::pairs(&body)
        .into_iter()
        .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
        .collect();
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
    let (inc, fields) = match take_form(app, user, mp).await {
        Ok(x) => x,
        Err(f) => return f.into_response(),
    };
    // The options first, as mkve-vm create checks its arguments before it
    // reads the bundle.
    if let Err(e) = create_options(inc.path.clone(), &fields, &app.config) {
        let f = failure(&e, &inc.path, &inc.name);
        return logged(app, user, format!("create {}", inc.name), f).into_response();
    }
    let upload = match read_upload(app, user, inc).await {
        Ok(u) => u,
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
            .map(|(a, b)| (a.to_string(), b.as_bytes().to_vec()))
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
