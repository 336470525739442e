//! Node roles: nodes are labelled and tainted `paddock.dev/node-role=<role>`
//! (vpn, task, shared, unmanaged). Task pods go to task/shared nodes, VPN pods to
//! vpn/shared nodes, nothing to unmanaged nodes; this module computes the
//! tolerations and required node affinity that say so.

use crate::labels::NODE_ROLE;
use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Toleration,
};

/// What kind of workload is being placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Task,
    Vpn,
}

impl Workload {
    /// Node roles this workload may run on.
    pub fn roles(self) -> [&'static str; 2] {
        match self {
            Workload::Task => ["task", "shared"],
            Workload::Vpn => ["vpn", "shared"],
        }
    }
}

/// Placement constraints for a workload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Placement {
    pub tolerations: Vec<Toleration>,
    pub affinity: Option<Affinity>,
}

/// Whether any node carries a `paddock.dev/node-role` label (without one,
/// placement is not narrowed unless the installation is strict).
pub async fn any_node_has_role(client: &kube::Client) -> Result<bool, kube::Error> {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let lp = kube::api::ListParams::default().labels(NODE_ROLE).limit(1);
    Ok(!nodes.list_metadata(&lp).await?.items.is_empty())
}

/// Placement on nodes of exactly these roles (e.g. `["shared"]` for a template
/// that asks for shared nodes only).
pub fn placement_on(roles: &[&str], any_node_has_role: bool, strict: bool) -> Placement {
    let tolerations = roles
        .iter()
        .map(|role| Toleration {
            key: Some(NODE_ROLE.into()),
            operator: Some("Equal".into()),
            value: Some((*role).into()),
            effect: None,
            toleration_seconds: None,
        })
        .collect();
    let affinity = (any_node_has_role || strict).then(|| Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: NODE_ROLE.into(),
                        operator: "In".into(),
                        values: Some(roles.iter().map(|r| r.to_string()).collect()),
                    }]),
                    match_fields: None,
                }],
            }),
            preferred_during_scheduling_ignored_during_execution: None,
        }),
        ..Default::default()
    });
    Placement { tolerations, affinity }
}

/// Tolerations for the workload's roles (every taint effect), and a required
/// node affinity to nodes of those roles. When no node in the cluster carries a
/// role label and `strict` is off, the affinity is dropped so the workload can
/// run on an unlabelled cluster; the tolerations stay (they only widen).
pub fn placement(workload: Workload, any_node_has_role: bool, strict: bool) -> Placement {
    placement_on(&workload.roles(), any_node_has_role, strict)
}

/// The roles a node may have.
pub const ROLES: [&str; 4] = ["vpn", "task", "shared", "unmanaged"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_pods_tolerate_and_require_task_or_shared() {
        let p = placement(Workload::Task, true, false);
        let vals: Vec<_> = p.tolerations.iter().map(|t| t.value.clone().unwrap()).collect();
        assert_eq!(vals, ["task", "shared"]);
        assert!(p.tolerations.iter().all(|t| t.effect.is_none() && t.key.as_deref() == Some(NODE_ROLE)));
        let req =
            p.affinity.unwrap().node_affinity.unwrap().required_during_scheduling_ignored_during_execution.unwrap();
        assert_eq!(
            req.node_selector_terms[0].match_expressions.as_ref().unwrap()[0].values.as_ref().unwrap(),
            &["task", "shared"]
        );
    }

    #[test]
    fn vpn_pods_go_to_vpn_or_shared() {
        let p = placement(Workload::Vpn, true, false);
        assert_eq!(p.tolerations[0].value.as_deref(), Some("vpn"));
        assert!(p.affinity.is_some());
    }

    #[test]
    fn unlabelled_clusters_drop_the_affinity_unless_strict() {
        assert!(placement(Workload::Task, false, false).affinity.is_none());
        assert!(placement(Workload::Task, false, true).affinity.is_some());
    }
}
