//! Checking a login against the system's accounts through PAM (service
//! `mkve-web`, `/etc/pam.d/mkve-web`; without that file PAM uses `other`):
//! `pam_authenticate` with the password given, then `pam_acct_mgmt` (an
//! expired or locked account is refused). A few lines of FFI to libpam
//! rather than a crate: the binding crates generate theirs with bindgen
//! (libclang at build time) for the five calls used here.
//!
//! PAM blocks (pam_unix waits about 2 s after a wrong password): call
//! [`authenticate`] on a blocking thread.

// FFI: libpam's conversation callback and its C structures.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};

/// The PAM service name, so the policy is `/etc/pam.d/mkve-web`.
pub const SERVICE: &str = "mkve-web";

const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
const PAM_CONV_ERR: c_int = 19;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;
const PAM_SILENT: c_int = 0x8000;
const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x1;
const PAM_RHOST: c_int = 4;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: ConvFn,
    appdata: *mut c_void,
}

#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

#[link(name = "pam")]
extern "C" {
    fn pam_start(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
    fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
}

/// What the conversation answers: the user's name to a prompt that
/// echoes, the password to one that does not.
struct Answers {
    user: CString,
    password: CString,
}

/// PAM's conversation: one answer per message, in memory PAM frees
/// (malloc'd). Messages for the user (errors, info) get no answer.
unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if num_msg <= 0 || msg.is_null() || resp.is_null() || appdata.is_null() {
        return PAM_CONV_ERR;
    }
    let n = num_msg as usize;
    // SAFETY: appdata is the `Answers` `authenticate` passed, alive for
    // the whole transaction.
    let answers = unsafe { &*(appdata as *const Answers) };
    // SAFETY: calloc of n zeroed responses; PAM frees the array and each
    // `resp` with free().
    let out = unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) } as *mut PamResponse;
    if out.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // Linux-PAM passes an array of pointers to messages.
        // SAFETY: PAM gives num_msg valid message pointers.
        let m = unsafe { &**msg.add(i) };
        let answer = match m.msg_style {
            PAM_PROMPT_ECHO_OFF => Some(&answers.password),
            PAM_PROMPT_ECHO_ON => Some(&answers.user),
            PAM_ERROR_MSG | PAM_TEXT_INFO => None,
            _ => {
                // SAFETY: the responses made so far and the array are ours.
                unsafe { free_responses(out, i) };
                return PAM_CONV_ERR;
            }
        };
        if let Some(a) = answer {
            // SAFETY: strdup of a valid C string; out has n entries.
            let copy = unsafe { libc::strdup(a.as_ptr()) };
            if copy.is_null() {
                unsafe { free_responses(out, i) };
                return PAM_BUF_ERR;
            }
            unsafe { (*out.add(i)).resp = copy };
        }
    }
    // SAFETY: resp is PAM's out-pointer.
    unsafe { *resp = out };
    PAM_SUCCESS
}

/// Free the first `n` responses of `out` and `out` itself, wiping
/// passwords first.
unsafe fn free_responses(out: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: the caller's responses, each null or strdup'd.
        let r = unsafe { (*out.add(i)).resp };
        if !r.is_null() {
            unsafe {
                let len = libc::strlen(r);
                std::ptr::write_bytes(r, 0, len);
                libc::free(r as *mut c_void);
            }
        }
    }
    unsafe { libc::free(out as *mut c_void) };
}

fn pam_error(pamh: *mut PamHandle, code: c_int) -> String {
    // SAFETY: pam_strerror returns a static string (or null).
    let p = unsafe { pam_strerror(pamh, code) };
    if p.is_null() {
        return format!("PAM error {code}");
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Whether `password` is `user`'s, and the account may be used now;
/// `rhost` (the client's address) is told to PAM for its logs. Errors: a
/// message saying why not (PAM's words: `Authentication failure`).
pub fn authenticate(user: &str, password: &str, rhost: &str) -> Result<(), String> {
    let bad = |_| "a name or password holds a NUL byte".to_string();
    let service = CString::new(SERVICE).map_err(bad)?;
    let c_user = CString::new(user).map_err(bad)?;
    let answers = Box::new(Answers {
        user: c_user.clone(),
        password: CString::new(password).map_err(bad)?,
    });
    let c_rhost = CString::new(rhost).map_err(bad)?;
    let conv = PamConv {
        conv: converse,
        appdata: &*answers as *const Answers as *mut c_void,
    };
    let mut pamh: *mut PamHandle = std::ptr::null_mut();
    // SAFETY: valid C strings; `conv` and `answers` outlive the
    // transaction, which pam_end closes below.
    let r = unsafe { pam_start(service.as_ptr(), c_user.as_ptr(), &conv, &mut pamh) };
    if r != PAM_SUCCESS || pamh.is_null() {
        return Err(format!("PAM cannot start: {}", pam_error(pamh, r)));
    }
    let result = (|| {
        // SAFETY: pamh is live; PAM copies the item.
        unsafe { pam_set_item(pamh, PAM_RHOST, c_rhost.as_ptr() as *const c_void) };
        let r = unsafe { pam_authenticate(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK) };
        if r != PAM_SUCCESS {
            return (r, Err(pam_error(pamh, r)));
        }
        let r = unsafe { pam_acct_mgmt(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK) };
        if r != PAM_SUCCESS {
            return (r, Err(pam_error(pamh, r)));
        }
        (PAM_SUCCESS, Ok(()))
    })();
    // SAFETY: ends the transaction pam_start began.
    unsafe { pam_end(pamh, result.0) };
    drop(answers);
    result.1
}
