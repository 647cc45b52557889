//! Failures as HTTP answers. The status comes from the kind of the error
//! (`mkve_core::Error`'s variant), never from its words: a machine that is
//! not there 404, usage 400, data 422, unavailable 503, an output that
//! cannot be made 507, the rest 500. The API answers
//! `{"error": MESSAGE, "exit": STATUS}` ([`ApiError`]): MESSAGE is what
//! the CLI prints after `mkve-vm: `, STATUS its exit status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mkve_core::error::exit;
use mkve_core::Error;

/// A failure as an HTTP status, for the API and the pages, by its kind: a
/// machine that is not there 404, usage 400, data 422, unavailable 503, an
/// output that cannot be made 507, the rest 500. A failure on another
/// node (`Error::Remote`) has the status its exit status maps to there.
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Usage(_) => StatusCode::BAD_REQUEST,
        Error::InvalidTemplate(_)
        | Error::InvalidConfig(_)
        | Error::InvalidBundle(_)
        | Error::Signature(_)
        | Error::UnknownPackages { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::CannotCreate { .. } => StatusCode::INSUFFICIENT_STORAGE,
        Error::Remote { .. } => match e.exit_code() {
            exit::USAGE => StatusCode::BAD_REQUEST,
            exit::DATAERR => StatusCode::UNPROCESSABLE_ENTITY,
            exit::UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
            exit::CANTCREAT => StatusCode::INSUFFICIENT_STORAGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        Error::Process(_)
        | Error::Io { .. }
        | Error::Other(_)
        | Error::Interrupted { .. }
        | Error::ReaderGone => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A failure as the API answers it: `{"error": MESSAGE, "exit": STATUS}`
/// with an HTTP status. Made from an `Error` (its status, exit status and
/// words), or by a refusal of mkve-web's own (a 403, a 405).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub exit: i32,
    pub message: String,
}

impl ApiError {
    /// A refusal of the request itself (exit 2) with `status`.
    pub fn refusal(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            exit: exit::USAGE,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "exit": self.exit });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError {
            status: status_of(&e),
            exit: e.exit_code(),
            message: e.to_string(),
        }
    }
}

/// A failure answered as one line of text with its status (the console's
/// socket, a job or upload that is not there).
#[derive(Debug)]
pub struct TextError(pub Error);

impl IntoResponse for TextError {
    fn into_response(self) -> Response {
        (status_of(&self.0), format!("{}\n", self.0)).into_response()
    }
}

impl From<Error> for TextError {
    fn from(e: Error) -> TextError {
        TextError(e)
    }
}
