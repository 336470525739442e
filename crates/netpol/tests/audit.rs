//! The tenant isolation report on synthetic clusters.

use netpol::audit::report;
use netpol::{Evaluator, Options, synthetic};

#[test]
fn isolated_tenants_report_no_crossings() {
    let ev = Evaluator::new(synthetic::cluster(3, 4, 4), Options::default());
    let r = report(&ev, "paddock.dev/tenant");
    assert_eq!(r.tenants.len(), 3);
    assert_eq!(r.cross_tenant_paths, 0);
    for t in r.tenants.values() {
        assert_eq!(t.pods, 4);
        assert!(t.without_policy.is_empty());
        assert!(t.external.is_empty());
    }
}

#[test]
fn a_tenant_without_policies_leaks_both_ways() {
    let mut input = synthetic::cluster(3, 4, 4);
    input.policies.retain(|p| p.namespace != "tenant-1");
    let ev = Evaluator::new(input, Options::default());
    let r = report(&ev, "paddock.dev/tenant");
    let t1 = &r.tenants["t1"];
    assert_eq!(t1.without_policy.len(), 4);
    assert_eq!(t1.external.len(), 4);
    // tenant-1 may send anywhere, but the other tenants isolate their ingress...
    assert!(t1.outbound.is_empty(), "others' ingress is isolated: {:?}", t1.outbound);
    // ...and their egress, so nothing crosses either way.
    assert_eq!(r.cross_tenant_paths, 0);
    // Open the others' egress as well: now tenant-0 and tenant-2 reach tenant-1.
    let mut input = synthetic::cluster(3, 4, 4);
    input.policies.retain(|p| p.namespace != "tenant-1");
    for p in input.policies.iter_mut() {
        p.affects_egress = false;
    }
    let ev = Evaluator::new(input, Options::default());
    let r = report(&ev, "paddock.dev/tenant");
    assert_eq!(r.cross_tenant_paths, 2 * 4 * 4);
    assert_eq!(r.tenants["t0"].outbound.len(), 16);
    assert_eq!(r.tenants["t0"].outbound[0].2, "all ports");
}
