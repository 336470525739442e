//! One ledger of a reconciler's own writes: per object it writes, one
//! record of what those writes are and did, so that it neither reacts to
//! nor repeats its own work.
//!
//! A reconciler reads the cluster from watch caches, which lag its writes by
//! a watch event. Without a record of its own writes it would take each
//! write's watch event for someone else's change and reconcile again, start
//! a reconcile from a cached copy without the write it just made and make it
//! again, re-apply objects that are exactly as its last apply left them, and
//! count pods it just created as missing. One record per object answers all
//! of these:
//!
//! - the versions its writes returned and the writes still in flight
//!   ([`echoes`]): a watch event of such a version is an echo and triggers
//!   nothing, and an event that comes while a write is in flight waits for
//!   its answer;
//! - for a primary object (a Tenant, an Instance), what its last write
//!   returned and the versions that write chain was made on ([`written`]):
//!   a reconcile handed one of those versions uses the written object;
//! - for an object it applies, the uid, generation and resourceVersion the
//!   last apply left, with a fingerprint of what was applied ([`applied`]):
//!   the one way an apply is skipped, and how drift someone else caused is
//!   told from the reconciler's own changes;
//! - for a pool, the pods it created or deleted that its cache does not
//!   show yet ([`expected`], the "expectations" of upstream's ReplicaSet
//!   controller);
//! - for an instance being removed, when its objects' deletes were sent
//!   ([`Ledger::deletes_sent`]), so later runs only count what is left; and
//!   when a periodic chore such as a namespace's orphan sweep was last done
//!   ([`Ledger::due`]).
//!
//! Each reconciler keeps its own ledger: an echo's note is spent by the
//! stream that delivers it, and two reconcilers may watch the same kind.
//! Records are keyed by a 64-bit hash of kind, namespace and name (two
//! objects sharing one is about a one-in-10^10 chance at the cap, and costs
//! one skipped or repeated write); there is one cap on their number, past
//! which everything but the writes in flight is forgotten, which costs only
//! redundant reconciles and writes.

pub mod applied;
mod echoes;
mod expected;
mod record;
mod written;

pub use applied::{Applied, Repair, Shown, fingerprint};
pub use echoes::Writing;
pub use record::{Ledger, MAX_RECORDS};
