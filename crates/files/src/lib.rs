//! Tenant storage browsing.
//!
//! A tenant's volumes are read and written through a small file server
//! (`paddock files-server`, run by the controller as a pod in the tenant's
//! namespace, mounting its claims) that the Paddock API proxies to. This crate
//! holds everything both ends share:
//!
//! - [`path`]: the one way a request's path becomes a path inside a volume
//!   (no `..`, no NUL or control characters, bounded lengths), checked before
//!   any store sees it;
//! - [`store`]: what a volume can do ([`store::Store`]), with [`disk`]'s store
//!   for real volumes (every open resolved beneath the volume's root by
//!   `cap-std`, so a symlink cannot lead out of it) and [`memory`]'s bounded
//!   in-memory store that kubesim's simulated volumes hold;
//! - [`protocol`]: the file server's routes and bodies;
//! - [`server`]: the file server itself, over any stores.

pub mod disk;
pub mod memory;
pub mod path;
pub mod protocol;
pub mod server;
pub mod store;

pub use path::VolPath;
pub use store::{Entry, FsError, Kind, Store};
