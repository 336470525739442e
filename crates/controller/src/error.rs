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
}

impl From<kube::runtime::finalizer::Error<Error>> for Error {
    fn from(e: kube::runtime::finalizer::Error<Error>) -> Self {
        match e {
            kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
            other => Error::Finalizer(other.to_string()),
        }
    }
}

/// A Kubernetes client error in one line: for an answer of the API server,
/// its message, code and reason (kube's own Display adds the whole Status
/// in Debug form).
pub fn brief(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.reason.is_empty() => format!("{} ({})", s.message, s.code),
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reconcile_error_from_the_api_server_reads_in_one_line() {
        let s: kube::core::Status = serde_json::from_value(serde_json::json!({"code": 409, "reason": "Conflict",
            "message": "the object has been modified", "status": "Failure"}))
        .unwrap();
        let e = super::Error::from(kube::Error::Api(s.boxed()));
        assert_eq!(e.to_string(), "Kubernetes API: the object has been modified (409 Conflict)");
    }
}
