//! `cargo bench -p netpol`: full reachability matrices on synthetic
//! multi-tenant clusters. Prints figures; asserts nothing about time.

use netpol::{Evaluator, Options, Protocol, synthetic};
use std::time::Instant;

fn run(tenants: usize, pods: usize, policies: usize) {
    let input = synthetic::cluster(tenants, pods, policies);
    let (n, p) = (input.pods.len(), input.policies.len());
    let t0 = Instant::now();
    let ev = Evaluator::new(input, Options::default());
    let built = t0.elapsed();
    let t1 = Instant::now();
    let any = ev.matrix(None);
    let any_t = t1.elapsed();
    let t2 = Instant::now();
    let http = ev.matrix(Some((Protocol::Tcp, 8080)));
    let http_t = t2.elapsed();
    let t3 = Instant::now();
    let report = netpol::audit::report(&ev, "paddock.dev/tenant");
    let report_t = t3.elapsed();
    let paths: usize = any.iter().map(|r| r.count_ones(..)).sum();
    let paths_http: usize = http.iter().map(|r| r.count_ones(..)).sum();
    println!(
        "{n} pods, {p} policies: precompute {:.1} ms; full pod x pod matrix any port {:.1} ms ({paths} paths), TCP/8080 {:.1} ms ({paths_http} paths)",
        built.as_secs_f64() * 1e3,
        any_t.as_secs_f64() * 1e3,
        http_t.as_secs_f64() * 1e3
    );
    println!(
        "  tenant audit report: {:.1} ms ({} tenants, {} cross-tenant paths)",
        report_t.as_secs_f64() * 1e3,
        report.tenants.len(),
        report.cross_tenant_paths
    );
}

fn main() {
    println!("netpol benchmark ({} cores)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    run(100, 20, 5); // 2,001 pods, 500 policies: the target (well under a second)
    run(500, 20, 4); // 10,001 pods, 2,000 policies: audit scale
}
