//! Two replicas: exactly one leads at a time, and the other takes over when the
//! leader stops.

use controller::leader::{Election, Leadership, lead};
use kubesim::testing::{TestCluster, wait_until};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_failover() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("lease").await;
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut stops = Vec::new();
    let mut leaders = Vec::new();
    let mut handles = Vec::new();
    for id in ["replica-a", "replica-b"] {
        let mut e = Election::new(&ns, "paddock-controller", id);
        e.lease_duration = Duration::from_secs(2);
        e.renew_every = Duration::from_millis(200);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        let leadership = Leadership::default();
        leaders.push(leadership.clone());
        let (running, most) = (running.clone(), most.clone());
        handles.push(tokio::spawn(lead(
            tc.client.clone(),
            e,
            leadership,
            async move {
                let _ = rx.await;
            },
            move |mut stop| {
                let (running, most) = (running.clone(), most.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    while !*stop.borrow() {
                        if stop.changed().await.is_err() {
                            break;
                        }
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                }
            },
        )));
    }
    wait_until(Duration::from_secs(10), "a leader", || async { leaders.iter().any(|l| l.is_leader()) }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(leaders.iter().filter(|l| l.is_leader()).count(), 1);
    let first = leaders.iter().position(|l| l.is_leader()).unwrap();
    // Stop the leader: it releases the lease and the other replica takes over.
    stops.remove(first).send(()).unwrap();
    let other = 1 - first;
    wait_until(Duration::from_secs(10), "the other replica to lead", || async { leaders[other].is_leader() }).await;
    assert_eq!(most.load(Ordering::SeqCst), 1, "never two leaders doing work at once");
    for s in stops {
        let _ = s.send(());
    }
    for h in handles {
        let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
    }
    tc.finish().await;
}

/// A leader whose work ends by itself (a reconciler died) stops campaigning
/// and releases the Lease at once, instead of holding it and reconciling nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_work_dies_gives_the_lease_up() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("lease").await;
    let mut e = Election::new(&ns, "paddock-controller", "replica-a");
    e.lease_duration = Duration::from_secs(30);
    e.renew_every = Duration::from_millis(200);
    let leadership = Leadership::default();
    let campaign = lead(tc.client.clone(), e, leadership.clone(), std::future::pending::<()>(), |_stop| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    tokio::time::timeout(Duration::from_secs(10), campaign).await.expect("the campaign ends with its work");
    assert!(!leadership.is_leader());
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = kube::Api::namespaced(tc.client.clone(), &ns);
    let lease = leases.get("paddock-controller").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity, None, "released, not left to expire in 30 s");
    tc.finish().await;
}
