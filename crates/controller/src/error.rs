//! The reconcilers' error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {}", brief(.0))]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// Not a failure: something is still in progress; retried soon, logged quietly.
    #[error("waiting: {0}")]
    Waiting(String),
    /// The reconcile panicked (a bug): caught, counted, retried with back-off.
    #[error("{0}")]
    Panicked(#[from] Panic),
    /// A tenant cluster's secrets could not be sealed or opened.
    #[error("cluster secrets: {0}")]
    Sealed(String),
}

impl From<crate::cluster::sealed::SealError> for Error {
    fn from(e: crate::cluster::sealed::SealError) -> Self {
        match e {
            crate::cluster::sealed::SealError::Kube(k) => Error::Kube(k),
            other => Error::Sealed(other.to_string()),
        }
    }
}

/// A panic caught in one reconcile, with its message.
#[derive(Debug, thiserror::Error)]
#[error("the reconcile panicked: {0}")]
pub struct Panic(pub String);

impl Panic {
    /// The message of a caught panic's payload.
    pub fn of(payload: &(dyn std::any::Any + Send)) -> Self {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(a panic without a message)".to_string());
        Self(msg)
    }
}

impl From<kube::runtime::finalizer::Error<Error>> for Error {
    fn from(e: kube::runtime::finalizer::Error<Error>) -> Self {
        match e {
            kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
            other => Error::Finalizer(other.to_string()),
        }
    }
}

/// A finalizer run's outcome as a reconcile's: its object gone (404) when
/// the finalizer was to be removed is what removing it was for, not an
/// error (the cleanup that deleted the object's last dependants can race its
/// own deletion, and a benchmark's cleanup of hundreds of instances logged a
/// warning for each).
pub fn finished(
    res: Result<kube::runtime::controller::Action, kube::runtime::finalizer::Error<Error>>,
) -> Result<kube::runtime::controller::Action, Error> {
    use kube::runtime::finalizer::Error as F;
    match res {
        Err(F::RemoveFinalizer(kube::Error::Api(s))) if s.code == 404 => {
            Ok(kube::runtime::controller::Action::await_change())
        }
        other => other.map_err(Error::from),
    }
}

/// The API server's answer to a write that trying again will not change (it
/// refused the request itself: 400, 403, 422), in one line.
pub fn refusal(e: &Error) -> Option<String> {
    match e {
        Error::Kube(k @ kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 422) => Some(brief(k)),
        _ => None,
    }
}

/// A Kubernetes client error in one line: for an answer of the API server,
/// its message, code and reason (kube's own Display adds the whole Status
/// in Debug form).
pub fn brief(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => status(s),
        other => other.to_string(),
    }
}

/// An API server's Status as `message (code reason)`.
fn status(s: &kube::core::Status) -> String {
    if s.reason.is_empty() {
        format!("{} ({})", s.message, s.code)
    } else {
        format!("{} ({} {})", s.message, s.code, s.reason)
    }
}

/// A watch failure in one line, as [`brief`] puts a client error.
pub fn watch_brief(e: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as W;
    match e {
        W::InitialListFailed(k) => format!("listing failed: {}", brief(k)),
        W::WatchStartFailed(k) => format!("starting the watch failed: {}", brief(k)),
        W::WatchFailed(k) => format!("the watch stream failed: {}", brief(k)),
        W::WatchError(s) => format!("the API server ended the watch: {}", status(s)),
        W::NoResourceVersion => e.to_string(),
    }
}

/// Logs a watch failure: a watch the API server expired (410 Gone) is
/// routine (debug); anything else, such as the API server unreachable or
/// access denied, is a warning. The watch itself restarts with backoff.
pub fn report_watch_error(watch: &str, e: &kube::runtime::watcher::Error) {
    let error = watch_brief(e);
    match e {
        kube::runtime::watcher::Error::WatchError(s) if s.code == 410 => {
            tracing::debug!(watch, %error, "a watch expired; it restarts");
        }
        _ => tracing::warn!(watch, %error, "a watch failed; it restarts with backoff"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_watch_failure_reads_in_one_line() {
        use kube::runtime::watcher::Error as W;
        let s: kube::core::Status = serde_json::from_value(serde_json::json!({"code": 410, "reason": "Expired",
            "message": "too old resource version: 1 (5)"}))
        .unwrap();
        assert_eq!(
            super::watch_brief(&W::WatchError(s.clone().boxed())),
            "the API server ended the watch: too old resource version: 1 (5) (410 Expired)"
        );
        let listed = super::watch_brief(&W::InitialListFailed(kube::Error::Api(s.boxed())));
        assert!(listed.starts_with("listing failed: too old") && !listed.contains("Status {"), "{listed}");
    }

    #[test]
    fn a_reconcile_error_from_the_api_server_reads_in_one_line() {
        let s: kube::core::Status = serde_json::from_value(serde_json::json!({"code": 409, "reason": "Conflict",
            "message": "the object has been modified", "status": "Failure"}))
        .unwrap();
        let e = super::Error::from(kube::Error::Api(s.boxed()));
        assert_eq!(e.to_string(), "Kubernetes API: the object has been modified (409 Conflict)");
    }
}
