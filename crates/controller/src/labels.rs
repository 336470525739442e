//! The labels Paddock puts on what it creates, so status is found by label and
//! policies can select by them.

pub use resources::vocabulary::{INSTANCE, MANAGED_BY, MANAGER, NODE_ROLE, ROLE, TEMPLATE, TENANT};
/// Field manager for server-side apply.
pub const FIELD_MANAGER: &str = "paddock";
