//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
//! leaderelection does: the holder renews the lease; a candidate takes it over
//! once it has not been renewed for a lease duration. Writes use the lease's
//! resourceVersion, so two replicas can never both win. Only the leader runs the
//! reconcilers.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Election {
    pub namespace: String,
    pub lease: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
}

impl Election {
    pub fn new(namespace: &str, lease: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.into(),
            lease: lease.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }
}

/// Whether this replica currently leads (for health endpoints and metrics).
#[derive(Clone, Default)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    pub fn is_leader(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// One attempt to acquire or renew; true when this replica holds the lease.
pub async fn try_acquire(api: &Api<Lease>, e: &Election) -> Result<bool, kube::Error> {
    let duration = e.lease_duration.as_secs().max(1) as i32;
    let Some(mut lease) = api.get_opt(&e.lease).await? else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(e.lease.clone()), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(e.identity.clone()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(err) => Err(err),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let ours = holder == e.identity;
    let expired = match &spec.renew_time {
        Some(t) => {
            let held_for = spec.lease_duration_seconds.unwrap_or(duration).max(1) as i64;
            // Checked: a Lease written by hand far in the future must not overflow.
            t.0.checked_add(jiff::SignedDuration::from_secs(held_for)).is_ok_and(|until| until < Timestamp::now())
        }
        None => true,
    };
    if !ours && !holder.is_empty() && !expired {
        return Ok(false);
    }
    if !ours {
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.holder_identity = Some(e.identity.clone());
    }
    spec.renew_time = Some(now());
    spec.lease_duration_seconds = Some(duration);
    // The resourceVersion from the read makes this a compare-and-swap.
    match api.replace(&e.lease, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(err) => Err(err),
    }
}

/// Gives the lease up so another replica can take over at once.
pub async fn release(api: &Api<Lease>, e: &Election) -> Result<(), kube::Error> {
    if let Some(mut lease) = api.get_opt(&e.lease).await?
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(e.identity.as_str())
    {
        spec.holder_identity = None;
        spec.renew_time = None;
        api.replace(&e.lease, &PostParams::default(), &lease).await?;
    }
    Ok(())
}

/// A lease error in a line: the API server's message (kube's Display of an
/// API error carries the whole Status), and what to do when the namespace is missing.
fn brief(err: &kube::Error, namespace: &str) -> String {
    match err {
        kube::Error::Api(s) if s.code == 404 && s.message.contains("namespaces") => {
            format!("{}: {}", s.message, crate::config::make_namespace(namespace))
        }
        other => crate::error::brief(other),
    }
}

/// Campaigns until `shutdown` resolves; while leading, runs `work` with a
/// signal that resolves when leadership is lost or the process stops. Work
/// that ends by itself while leading ends the campaign too, with the Lease
/// released (the caller finds out why and stops the process).
pub async fn lead<W, Fut>(
    client: Client,
    e: Election,
    leadership: Leadership,
    shutdown: impl Future<Output = ()>,
    work: W,
) where
    W: Fn(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let api: Api<Lease> = Api::namespaced(client, &e.namespace);
    tokio::pin!(shutdown);
    // The same failure, retried every few seconds, is logged once as a warning.
    let mut failing: Option<String> = None;
    loop {
        // Candidate: try until we hold the lease.
        let acquired = tokio::select! {
            _ = &mut shutdown => return,
            r = try_acquire(&api, &e) => r,
        };
        match acquired {
            Ok(true) => {}
            Ok(false) => {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(e.renew_every) => continue,
                }
            }
            Err(err) => {
                let why = brief(&err, &e.namespace);
                if failing.as_ref() == Some(&why) {
                    tracing::debug!(error = %why, lease = %e.lease, "leader election: still cannot reach the lease");
                } else {
                    tracing::warn!(error = %why, lease = %e.lease, "leader election: cannot reach the lease; retrying");
                    failing = Some(why);
                }
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(e.renew_every) => continue,
                }
            }
        }
        failing = None;
        tracing::info!(identity = %e.identity, lease = %e.lease, "became the leader");
        leadership.0.store(true, Ordering::Relaxed);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut task = tokio::spawn(work(stop_rx));
        let mut last_renewed = tokio::time::Instant::now();
        let mut work_ended = false;
        let stopping = loop {
            tokio::select! {
                _ = &mut shutdown => break true,
                // The work ended by itself (a reconciler stopped): a leader
                // that reconciles nothing gives the Lease up and stops.
                _ = &mut task => {
                    tracing::error!(identity = %e.identity, "the leader's work stopped; releasing the lease");
                    work_ended = true;
                    break true;
                }
                _ = tokio::time::sleep(e.renew_every) => {
                    match try_acquire(&api, &e).await {
                        Ok(true) => last_renewed = tokio::time::Instant::now(),
                        Ok(false) => {
                            tracing::warn!(identity = %e.identity, "lost the lease to another replica");
                            break false;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "could not renew the lease");
                            if last_renewed.elapsed() >= e.lease_duration {
                                break false;
                            }
                        }
                    }
                }
            }
        };
        leadership.0.store(false, Ordering::Relaxed);
        let _ = stop_tx.send(true);
        if !work_ended {
            let _ = task.await;
        }
        if stopping {
            if let Err(err) = release(&api, &e).await {
                tracing::debug!(error = %err, "could not release the lease");
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::brief;

    fn api_error(code: u16, message: &str) -> kube::Error {
        let s: kube::core::Status =
            serde_json::from_value(serde_json::json!({"code": code, "message": message, "reason": "NotFound"}))
                .unwrap();
        kube::Error::Api(s.boxed())
    }

    #[test]
    fn a_lease_error_is_one_line_and_a_missing_namespace_says_how_to_make_it() {
        let why = brief(&api_error(404, "namespaces \"paddock-system\" not found"), "paddock-system");
        assert!(why.contains("kubectl create namespace paddock-system"), "{why}");
        assert!(!why.contains("Status {"), "no debug dump: {why}");
        assert_eq!(brief(&api_error(403, "leases is forbidden"), "x"), "leases is forbidden (403 NotFound)");
    }
}
