//! Creating machines from uploaded bundles: the flow the pages and the API
//! share. The form is taken (the bundle streamed to disk, `uploads.rs`;
//! the other fields read whole and each name checked as it comes), the
//! bundle read, then `vm::create` makes the machine, the same call and
//! checks as `mkve-vm create`, on a blocking thread. Every failure is
//! logged, and names the bundle as the operator sent it, so it reads as
//! `mkve-vm create NAME` would print it.

use std::path::Path;
use std::sync::Arc;

use axum::extract::Multipart;
use mkve_core::bundle;
use mkve_core::ids::MachineId;
use mkve_core::report::Report;
use mkve_core::vm;
use mkve_core::Error;

use crate::error::{status_of, ApiError};
use crate::form::{create_options, Fields};
use crate::jobs::Job;
use crate::state::{blocking, Shared};
use crate::uploads::{field_value, inspect, receive, sweep, Incoming, Upload};

/// `e` with the upload's path on disk replaced by the name it was sent
/// with: what `mkve-vm create NAME` prints, run where the file is.
pub fn reword(e: &Error, path: &Path, name: &str) -> String {
    e.to_string().replace(&path.display().to_string(), name)
}

/// Why a create failed: the HTTP status and exit status of its error,
/// and its message in the CLI's words.
fn failure(e: &Error, path: &Path, name: &str) -> ApiError {
    ApiError {
        status: status_of(e),
        exit: e.exit_code(),
        message: reword(e, path, name),
    }
}

/// Create the machine of `upload` with `fields`, reporting to `report`;
/// logged as `create NAME` by `user`, errors in the CLI's words.
pub async fn run_create(
    app: &Shared,
    user: &str,
    upload: Upload,
    fields: Fields,
    report: Arc<dyn Report + Send + Sync>,
) -> Result<MachineId, ApiError> {
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
fn logged(app: &Shared, user: &str, action: String, f: ApiError) -> ApiError {
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
/// (`uploads::receive`), the others read whole, each name checked as it
/// comes (`request::field_name`). Uploads older than an hour are forgotten
/// first. Errors (2): no bundle, a field refused, a body cut short or
/// malformed; and those of `receive`. Nothing of the upload is left after
/// an error.
pub async fn take_form(
    app: &Shared,
    user: &str,
    mut mp: Multipart,
) -> Result<(Incoming, Fields), ApiError> {
    sweep(&app.uploads);
    let mut fields: Fields = Vec::new();
    let mut incoming = None;
    let refused = |e: Error| {
        app.log.record(user, "upload", Some(&e));
        ApiError::from(e)
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
            incoming = Some(receive(&app.config, field).await.map_err(refused)?);
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

/// Read a received bundle (`uploads::inspect`). Errors: those of
/// `inspect`, the path reworded to the name it was sent with, logged as
/// `upload NAME`.
pub async fn read_upload(app: &Shared, user: &str, inc: Incoming) -> Result<Upload, ApiError> {
    let (path, name) = (inc.path.clone(), inc.name.clone());
    let config = app.config.clone();
    blocking(move || inspect(&config, inc)).await.map_err(|e| {
        logged(
            app,
            user,
            format!("upload {name}"),
            failure(&e, &path, &name),
        )
    })
}

/// A bundle and its options in one multipart request (`bundle` the file,
/// the other fields as [`create_options`] reads them), the API's create:
/// the machine's ID once it is made.
pub async fn at_once(app: &Shared, user: &str, mp: Multipart) -> Result<MachineId, ApiError> {
    let (inc, fields) = take_form(app, user, mp).await?;
    // The options first, as mkve-vm create checks its arguments before it
    // reads the bundle.
    if let Err(e) = create_options(inc.path.clone(), &fields, &app.config) {
        let f = failure(&e, &inc.path, &inc.name);
        return Err(logged(app, user, format!("create {}", inc.name), f));
    }
    let upload = read_upload(app, user, inc).await?;
    let report: Arc<dyn Report + Send + Sync> =
        Job::new(format!("create {}", upload.name), app.config.verbose);
    run_create(app, user, upload, fields, report).await
}
