//! The API's routes, one module per resource. Every handler carries its
//! OpenAPI description (`utoipa::path`) and is registered with `routes!`, so
//! the router and `/openapi.json` are built from the same list.

pub mod activity;
pub mod audit;
pub mod claim;
pub mod clusters;
pub mod events;
pub mod health;
pub mod instances;
pub mod kubeconfig;
pub mod logs;
pub mod nodes;
pub mod storage;
pub mod templates;
pub mod tenants;
pub mod tokens;
pub mod vpn;

use crate::auth::Principal;
use crate::model::Paging;
use crate::problem::{Problem, Result};
use crate::state::Shared;
use kube::api::ListParams;
use resources::Tenant;

/// List parameters from the paging query, checked.
pub fn list_params(p: &Paging) -> Result<ListParams> {
    let limit = p.limit.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request(format!("limit must be between 1 and 1000, not {limit}")).field("limit"));
    }
    let mut lp = ListParams::default().limit(limit);
    if let Some(c) = p.next.as_deref().filter(|c| !c.is_empty()) {
        lp = lp.continue_token(c);
    }
    Ok(lp)
}

/// Whether `name` can name a Kubernetes object (a DNS-1123 subdomain); a
/// path naming anything else answers 404, as the object cannot exist.
pub fn object_name(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(resources::is_dns_label)
}

/// 404 for a name no object can have.
pub fn named(what: &str, name: &str) -> Result<()> {
    if object_name(name) { Ok(()) } else { Err(Problem::not_found(what, name)) }
}

/// The tenant, if the caller may see it; 404 otherwise (absent or not theirs).
pub async fn visible_tenant(s: &Shared, who: &Principal, tenant: &str) -> Result<std::sync::Arc<Tenant>> {
    who.see_tenant(tenant)?;
    if !resources::is_dns_label(tenant) {
        return Err(Problem::not_found("tenant", tenant));
    }
    s.tenant(tenant).await?.ok_or_else(|| Problem::not_found("tenant", tenant))
}

/// Whether the tenant may start anything now (instances, a file server):
/// not while it is being deleted, and not when its reconciler refused it (a
/// spec it cannot apply, or a name whose namespace is Paddock's own or
/// someone else's: that namespace is not its own to start in).
pub fn may_start(t: &resources::Tenant, tenant: &str) -> Result<()> {
    if t.metadata.deletion_timestamp.is_some() {
        return Err(Problem::conflict("tenant-deleting", format!("tenant {tenant:?} is being deleted")));
    }
    if let Some(c) = t.status.as_ref().and_then(|st| st.conditions.iter().find(|c| c.type_ == "Ready"))
        && c.reason == "InvalidSpec"
    {
        return Err(Problem::conflict(
            "tenant-not-ready",
            format!("tenant {tenant:?} was refused, so it starts nothing until it is fixed: {}", c.message),
        ));
    }
    Ok(())
}

/// The instance, if the caller may see it and it exists; 404 otherwise (the
/// same answer for another tenant's).
pub async fn visible_instance(s: &Shared, who: &Principal, tenant: &str, name: &str) -> Result<resources::Instance> {
    visible_tenant(s, who, tenant).await?;
    named("instance", name)?;
    let api: kube::Api<resources::Instance> = kube::Api::namespaced(s.client.clone(), &s.namespace(tenant));
    api.get_opt(name).await?.ok_or_else(|| Problem::not_found("instance", name))
}

/// A body's `ttl`, checked to be a duration within `min..=max` (`bounds`
/// says them for people, e.g. "1m and 400d"; `like` gives examples).
pub fn ttl_within(
    ttl: &str,
    (min, max): (std::time::Duration, std::time::Duration),
    bounds: &str,
    like: &str,
) -> Result<std::time::Duration> {
    use resources::duration::{Malformed, parse_exact};
    let d = match parse_exact(ttl) {
        Ok(d) => Some(d),
        Err(Malformed::NotADuration) => {
            return Err(Problem::invalid("ttl", format!("{ttl:?} is not a duration (like {like})")));
        }
        Err(Malformed::Zero | Malformed::TooLong) => None,
    };
    let Some(d) = d.filter(|d| (min..=max).contains(d)) else {
        return Err(Problem::invalid("ttl", format!("{ttl} is not between {bounds}")));
    };
    Ok(d)
}

/// A 422 naming the first problem's field and listing them all.
pub fn invalid(problems: &[resources::FieldProblem]) -> Problem {
    let detail = problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
    Problem::invalid(problems.first().map(|p| p.field.clone()).unwrap_or_default(), detail)
}
