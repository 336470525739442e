//! Installing Paddock into a cluster from code (for `paddock dev` and tests):
//! the CRDs, waited on until served, and all reconcilers in one future.

use crate::config::Settings;
use crate::error::Error;
use crate::metrics::Metrics;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::conditions;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Applies every Paddock CRD (server-side apply as `manager`) and waits until
/// each is established, at most `timeout` each.
pub async fn crds(client: &kube::Client, manager: &str, timeout: Duration) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    // Made for the server's version: rules it cannot compile are left out.
    let version = server_version(client).await.unwrap_or(resources::kubernetes::OLDEST);
    for crd in resources::kubernetes::crds_for(version) {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &PatchParams::apply(manager).force(), &Patch::Apply(&crd)).await?;
        let established = kube::runtime::wait::await_condition(api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(timeout, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Error::Waiting(format!("CRD {name}: {e}"))),
            Err(_) => return Err(Error::Waiting(format!("CRD {name} was not established within {timeout:?}"))),
        }
    }
    Ok(())
}

/// Whether the cluster serves Paddock's resources; the error names the
/// missing ones and how to install them (the reconcilers and the API wait
/// for them, so a CRD applied after them is picked up).
pub async fn check_crds(client: &kube::Client) -> Result<(), String> {
    let version = <resources::Tenant as kube::Resource>::api_version(&());
    let served: Vec<String> = match client.list_api_group_resources(&version).await {
        Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
        Err(kube::Error::Api(e)) if e.code == 404 => Vec::new(),
        Err(e) => {
            return Err(format!("cannot check whether the cluster serves {version}: {}", crate::error::brief(&e)));
        }
    };
    let missing: Vec<String> = resources::crds()
        .iter()
        .map(|c| (c.spec.names.plural.clone(), c.spec.group.clone()))
        .filter(|(plural, _)| !served.contains(plural))
        .map(|(plural, group)| format!("{plural}.{group}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the cluster does not serve {} ({version}): install Paddock's CRDs (`paddock crds | kubectl apply -f -`, \
         or the whole bundle from `paddock manifests`); waiting for them",
        missing.join(", ")
    ))
}

/// Whether Paddock's system namespace exists (the leader-election Lease and
/// the API's token Secrets live in it); the error says how to make it.
pub async fn check_system_namespace(client: &kube::Client, ns: &str) -> Result<(), String> {
    match Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone()).get_opt(ns).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!(
            "the system namespace {ns:?} does not exist: {}; leader election and tenant tokens wait for it",
            crate::config::make_namespace(ns)
        )),
        Err(e) => Err(format!("cannot check whether the system namespace {ns:?} exists: {}", crate::error::brief(&e))),
    }
}

/// The Kubernetes version of the API server, if it says.
pub async fn server_version(client: &kube::Client) -> Option<resources::kubernetes::Version> {
    client.apiserver_version().await.ok().and_then(|i| resources::kubernetes::Version::of_server(&i))
}

/// Whether the cluster runs a Kubernetes Paddock supports: an error names
/// the server's version and the supported range when it is older; a newer
/// one is logged as untested and accepted.
pub async fn check_version(client: &kube::Client) -> Result<(), String> {
    use resources::kubernetes::{NEWEST, OLDEST};
    let Some(v) = server_version(client).await else {
        tracing::warn!("the API server did not say its Kubernetes version; Paddock supports {OLDEST} to {NEWEST}");
        return Ok(());
    };
    match v.support() {
        Ok(()) => {
            tracing::info!(kubernetes = %v, "the cluster's Kubernetes version is supported");
            Ok(())
        }
        Err(why) if v > NEWEST => {
            tracing::warn!("{why}");
            Ok(())
        }
        Err(why) => Err(why),
    }
}

/// Logs, once at start, what [`check_crds`] and [`check_system_namespace`]
/// find missing (the caller goes on and waits for them).
pub async fn report_missing(client: &kube::Client, system_namespace: &str) {
    if let Err(why) = check_crds(client).await {
        tracing::error!("{why}");
    }
    if let Err(why) = check_system_namespace(client, system_namespace).await {
        tracing::error!("{why}");
    }
}

/// Runs the tenant, instance, pool, template and cluster reconcilers until `stop`
/// resolves, recording into `metrics`.
///
/// A reconciler that ends before `stop` (a panic outside any one reconcile,
/// which [`Metrics::reconcile`] does not catch) ends them all: the reason is
/// recorded ([`Metrics::unhealthy`], which `/healthz` reports), and the
/// caller gives up leadership, so a healthy replica or a restart takes over
/// instead of a leader that holds the Lease and reconciles nothing.
pub async fn reconcilers<S>(client: kube::Client, settings: Settings, metrics: Arc<Metrics>, stop: S)
where
    S: Future<Output = ()> + Clone + Send + Sync + 'static,
{
    let index = crate::index::Index::new(
        metrics.requests.client(client.clone(), "index"),
        metrics.watch_errors(),
        settings.scope_selector(),
    );
    reconcilers_with(index, client, settings, metrics, stop).await
}

/// [`reconcilers`] on the process's shared watches `index` (which the API,
/// in the same process, reads too).
pub async fn reconcilers_with<S>(
    index: crate::index::Index,
    client: kube::Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    stop: S,
) where
    S: Future<Output = ()> + Clone + Send + Sync + 'static,
{
    use futures::FutureExt;
    let pools = Arc::new(crate::pool::Pools::default());
    let m = &metrics;
    // Each reconciler's requests are counted apart (`paddock_kube_requests_total`).
    let client_of = |component| m.requests.client(client.clone(), component);
    // One watch of Tenants and one of their namespaces, for both controllers.
    let watches = crate::tenant::Watches::new(&client_of("tenant"), &index);
    let instances = crate::instance::reconcile::Context::with_pools(
        client_of("instance"),
        settings.clone(),
        pools.clone(),
        m.clone(),
    );
    instances.read_tenants_from(watches.stores());
    instances.read_from(index.clone());
    let template_users = Some(instances.clone());
    let tenant = crate::tenant::run_with(
        crate::tenant::Context::new(client_of("tenant"), settings.clone(), m.clone()),
        watches,
        stop.clone(),
    );
    let instance = crate::instance::reconcile::run(instances.clone(), stop.clone());
    let pool_ctx = crate::pool::reconcile::Context::new(client_of("pool"), settings.clone(), pools, m.clone());
    let nodes = instances.clone();
    pool_ctx.read_node_roles_from(Box::new(move || nodes.any_node_has_role()));
    let known = instances.clone();
    pool_ctx.read_instances_from(Box::new(move |ns, name| known.instance_uid(ns, name)));
    pool_ctx.read_from(index.clone());
    let pool = crate::pool::reconcile::run(pool_ctx, stop.clone());
    let clusters = crate::cluster::run(
        crate::cluster::Context::new(client_of("cluster"), settings.clone(), m.clone()),
        stop.clone(),
    );
    let template =
        crate::template::run(client_of("template"), settings, m.clone(), template_users, Some(index), stop.clone());
    let running: Vec<futures::future::BoxFuture<'static, (&'static str, Option<String>)>> = vec![
        watched("tenant", tenant).boxed(),
        watched("instance", instance).boxed(),
        watched("pool", pool).boxed(),
        watched("template", template).boxed(),
        watched("cluster", clusters).boxed(),
    ];
    let ((name, panic), _, rest) = futures::future::select_all(running).await;
    if stop.clone().now_or_never().is_some() {
        // Stopping: the others end too.
        futures::future::join_all(rest).await;
        return;
    }
    let why = match panic {
        Some(p) => format!("the {name} reconciler panicked: {p}"),
        None => format!("the {name} reconciler stopped"),
    };
    tracing::error!(reason = %why, "a reconciler stopped unexpectedly; stopping them all and giving up leadership");
    metrics.reconciler_stopped(why);
}

/// Runs one reconciler, catching a panic that escapes it: its name and the
/// panic's message, if it panicked.
async fn watched(name: &'static str, run: impl Future<Output = ()>) -> (&'static str, Option<String>) {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(run).catch_unwind().await {
        Ok(()) => (name, None),
        Err(payload) => (name, Some(crate::error::Panic::of(payload.as_ref()).0)),
    }
}

/// Makes sure a namespace exists (Paddock's system namespace in `paddock dev` and tests).
pub async fn namespace(client: &kube::Client, name: &str, manager: &str) -> Result<(), Error> {
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name,
        "labels": {crate::labels::MANAGED_BY: crate::labels::MANAGER}}});
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .patch(name, &PatchParams::apply(manager), &Patch::Apply(&ns))
        .await?;
    Ok(())
}
