//! The human summary of a `kistrel bench run` report, on stdout.

use super::report::Report;
use crate::tgen::Percentiles;

/// Prints the table.
pub(super) fn print(r: &Report) {
    let t = &r.throughput;
    println!(
        "kistrel bench  ({} x {} MiB, {} worker(s), backend {}, links {}, scheduler {})",
        r.circuits, r.transfer_mib, r.workers, r.backend, r.links, r.scheduler
    );
    println!(
        "  throughput   3 hops {:8.1} MiB/s   direct {:8.1} MiB/s   ratio {:.3}",
        t.throughput_mib_s, t.direct_throughput_mib_s, t.ratio_vs_direct
    );
    println!(
        "  baseline     3 plain TCP forwarders {:8.1} MiB/s   kistrel / forwarders {:.3}",
        t.forwarders_throughput_mib_s, t.ratio_vs_forwarders
    );
    for (phase, models) in &r.transfers {
        for (model, m) in models {
            let (fb, lb) = (m.ttfb_s, m.ttlb_s);
            let p = |q: Option<Percentiles>, f: fn(&Percentiles) -> f64| {
                q.map_or("-".to_owned(), |q| format!("{:.3}", f(&q)))
            };
            println!(
                "  {phase:<9} {model:<5} n={:<4} failed={:<2} ttfb p50/p90/p99 {}/{}/{} s   ttlb p50/p90/p99 {}/{}/{} s",
                m.count,
                m.count - m.ok,
                p(fb, |q| q.p50),
                p(fb, |q| q.p90),
                p(fb, |q| q.p99),
                p(lb, |q| q.p50),
                p(lb, |q| q.p90),
                p(lb, |q| q.p99),
            );
        }
    }
    if let Some(c) = &r.scheduler_comparison {
        let round = |v: &[f64]| {
            v.iter()
                .map(|v| (v * 10.0).round() / 10.0)
                .collect::<Vec<_>>()
        };
        println!(
            "  schedulers   KIST {:?} MiB/s   Vanilla {:?} MiB/s   KIST/Vanilla {:.3}",
            round(&c.kist_mib_s),
            round(&c.vanilla_mib_s),
            c.kist_over_vanilla
        );
    }
    if let Some(w) = &r.workers_comparison {
        println!(
            "  workers      1: {:.1} MiB/s   2: {:.1} MiB/s   2/1 {:.3}",
            w.one_worker_mib_s, w.two_workers_mib_s, w.two_over_one
        );
    }
    if let Some(l) = &r.links_comparison {
        let round = |v: &[f64]| {
            v.iter()
                .map(|v| (v * 10.0).round() / 10.0)
                .collect::<Vec<_>>()
        };
        println!(
            "  links        TLS {:?} MiB/s   plain {:?} MiB/s   TLS/plain {:.3}",
            round(&l.tls_mib_s),
            round(&l.plain_mib_s),
            l.tls_over_plain
        );
        for c in &l.cpu_by_role {
            println!(
                "  links cpu    {:<8} TLS {:6.2}  plain {:6.2}  TLS adds {:+6.2} CPU-s/GiB",
                c.role, c.tls_cpu_s_per_gib, c.plain_cpu_s_per_gib, c.added_cpu_s_per_gib
            );
        }
    }
    if !r.scheduler_metrics.is_empty() {
        println!("  scheduler    node     runs/s  cells/run p50  relay queue p50/p99 ms  kernel queue (sampled) p50/p99 ms");
    }
    for m in &r.scheduler_metrics {
        println!(
            "  {:<12} {:<8} {:7.0}  {:13.0}  {:9.2}/{:<9.2}     {:9.2}/{:<9.2}",
            m.scheduler,
            m.node,
            m.runs_per_s,
            m.cells_per_run.p50,
            m.relay_queue_ms.p50,
            m.relay_queue_ms.p99,
            m.kernel_queue_sampled_ms.p50,
            m.kernel_queue_sampled_ms.p99
        );
    }
    for c in &r.cpu_s_per_gib {
        println!(
            "  cpu  {:<8} pid {:<7} {:7.2} s  = {:6.2} CPU-s/GiB",
            c.role, c.pid, c.cpu_s, c.cpu_s_per_gib
        );
    }
}
