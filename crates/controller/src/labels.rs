//! The labels Paddock puts on what it creates, so status is found by label and
//! policies can select by them.

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "paddock";
pub const TENANT: &str = "paddock.dev/tenant";
pub const TEMPLATE: &str = "paddock.dev/template";
pub const INSTANCE: &str = "paddock.dev/instance";
pub const ROLE: &str = "paddock.dev/role";
pub const NODE_ROLE: &str = "paddock.dev/node-role";
/// Field manager for server-side apply.
pub const FIELD_MANAGER: &str = "paddock";
