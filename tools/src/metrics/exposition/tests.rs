use kistrel_engine::relay::RelayStats;
use kistrel_sched::{KernelStage, SchedMetrics, SchedulerKind};

use super::*;
use crate::metrics::figures::zeroed;

fn figures() -> Figures {
    let mut m = SchedMetrics::new();
    m.runs = 7;
    m.exhausted.cwnd = 3;
    m.record_kernel_stage(KernelStage::Sent, 2_000);
    m.record_kernel_stage(KernelStage::Acked, 40_000);
    m.record_kernel_queue_estimate(2_000);
    m.record_kernel_queue_estimate(90_000);
    let stats = RelayStats {
        cells_in: 10,
        cells_out: 9,
        creates_refused: 4,
        ..RelayStats::default()
    };
    let mut f = zeroed(2);
    f.insert(
        1,
        WorkerFigures {
            stats,
            sched: m,
            scheduler: Some(SchedulerKind::Kist),
            links: kistrel_engine::runtime::LinkStats {
                tls_user: 3,
                ktls_rx: 2,
                handed_to_sibling: 8,
                ..Default::default()
            },
            events_dropped: 5,
            commands_dropped: 6,
            io: kistrel_engine::runtime::DriverStats {
                waits: 11,
                recv_no_buffers: 12,
                ..Default::default()
            },
        },
    );
    f
}

#[test]
fn openmetrics_names_counters_and_units_per_the_spec() {
    let text = render(&figures(), Format::OpenMetrics);
    for want in [
        "# TYPE kistrel_cells_in counter\n",
        "kistrel_cells_in_total{worker=\"0\"} 0\n",
        "kistrel_links_tls_user_total{worker=\"1\"} 3\n",
        "kistrel_links_ktls_rx_total{worker=\"1\"} 2\n",
        "kistrel_channels_handed_to_sibling_total{worker=\"1\"} 8\n",
        "kistrel_io_waits_total{worker=\"1\"} 11\n",
        "kistrel_io_recv_no_buffers_total{worker=\"1\"} 12\n",
        "kistrel_io_sends_total{worker=\"0\"} 0\n",
        "kistrel_channels_adopted_from_sibling_total{worker=\"0\"} 0\n",
        "kistrel_cells_in_total{worker=\"1\"} 10\n",
        "kistrel_sched_runs_total{worker=\"1\"} 7\n",
        "kistrel_creates_refused_total{worker=\"1\"} 4\n",
        "kistrel_control_events_dropped_total{worker=\"1\"} 5\n",
        "kistrel_control_commands_dropped_total{worker=\"1\"} 6\n",
        "kistrel_control_events_dropped_total{worker=\"0\"} 0\n",
        "kistrel_sched_grants_exhausted_total{worker=\"1\",by=\"cwnd\"} 3\n",
        "# TYPE kistrel_sched_granted_bytes counter\n# UNIT kistrel_sched_granted_bytes bytes\n",
        "# TYPE kistrel_scheduler info\n",
        "kistrel_scheduler_info{worker=\"1\",scheduler=\"KIST\"} 1\n",
        "# TYPE kistrel_kernel_queue_seconds histogram\n# UNIT kistrel_kernel_queue_seconds seconds\n",
        "# TYPE kistrel_sched_run_cells histogram\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    // Worker 0 has not reported its scheduler: no info sample for it.
    assert!(!text.contains("kistrel_scheduler_info{worker=\"0\""));
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn text_004_names_families_like_their_samples() {
    let text = render(&figures(), Format::Text004);
    for want in [
        "# HELP kistrel_cells_in_total Cells received\n# TYPE kistrel_cells_in_total counter\n",
        "kistrel_cells_in_total{worker=\"1\"} 10\n",
        "# TYPE kistrel_sched_granted_bytes_total counter\n",
        "# TYPE kistrel_scheduler_info gauge\n",
        "kistrel_scheduler_info{worker=\"1\",scheduler=\"KIST\"} 1\n",
        "# TYPE kistrel_relay_queue_seconds histogram\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(
        !text.contains("# UNIT") && !text.contains("# EOF"),
        "{text}"
    );
}

/// The sample `name{labels...} value` of a page, as a number.
fn sample(text: &str, series: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line[series.len() + 1..].parse().unwrap()
}

/// The kernel queue of the page is the measured one (SO_TIMESTAMPING SND stamps); the
/// model keeps its own `_estimated` names; SCHED and ACK have their own families.
#[test]
fn kernel_queue_families_are_measured_and_the_model_is_named_estimated() {
    let text = render(&figures(), Format::Text004);
    let help = "# HELP kistrel_kernel_queue_seconds Measured (SO_TIMESTAMPING SND stamps";
    assert!(text.contains(help), "{text}");
    for family in [
        "kistrel_kernel_queue_seconds",
        "kistrel_kernel_sched_seconds",
        "kistrel_kernel_ack_seconds",
        "kistrel_kernel_queue_estimated_seconds",
        "kistrel_kernel_queue_estimated_sampled_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} histogram\n")),
            "missing {family} in\n{text}"
        );
    }
    assert!(text.contains("# HELP kistrel_kernel_queue_estimated_seconds Model, not a measurement"));
    let count = |f: &str| sample(&text, &format!("kistrel_{f}_seconds_count{{worker=\"1\"}}"));
    // One SND stamp, one ACK stamp, two model samples, no SCHED stamp: each in its family.
    assert_eq!(count("kernel_queue"), 1.0);
    assert_eq!(count("kernel_ack"), 1.0);
    assert_eq!(count("kernel_sched"), 0.0);
    assert_eq!(count("kernel_queue_estimated"), 2.0);
    assert_eq!(count("kernel_queue_estimated_sampled"), 0.0);
}

#[test]
fn histograms_are_cumulative_buckets_in_the_exported_unit() {
    let text = render(&figures(), Format::Text004);
    let s = "kistrel_kernel_queue_seconds";
    // 2 ms recorded once on worker 1: below 0.001 s nothing, at 0.002 s and above all of it.
    // (prometheus-client writes `le` before the family's labels.)
    assert_eq!(sample(&text, &format!("{s}_count{{worker=\"1\"}}")), 1.0);
    assert_eq!(
        sample(&text, &format!("{s}_bucket{{le=\"0.001\",worker=\"1\"}}")),
        0.0
    );
    assert_eq!(
        sample(&text, &format!("{s}_bucket{{le=\"0.002\",worker=\"1\"}}")),
        1.0
    );
    assert_eq!(
        sample(&text, &format!("{s}_bucket{{le=\"+Inf\",worker=\"1\"}}")),
        1.0
    );
    let sum = sample(&text, &format!("{s}_sum{{worker=\"1\"}}"));
    assert!((sum - 0.002).abs() < 0.00001, "{sum}");
    // Worker 0: every series present, at zero.
    assert_eq!(sample(&text, &format!("{s}_count{{worker=\"0\"}}")), 0.0);
    assert_eq!(
        sample(&text, &format!("{s}_bucket{{le=\"+Inf\",worker=\"0\"}}")),
        0.0
    );
}

#[test]
fn pages_are_stable() {
    let f = figures();
    assert_eq!(render(&f, Format::Text004), render(&f, Format::Text004));
    let text = render(&f, Format::OpenMetrics);
    let w0 = text.find("kistrel_cells_in_total{worker=\"0\"}").unwrap();
    let w1 = text.find("kistrel_cells_in_total{worker=\"1\"}").unwrap();
    assert!(w0 < w1);
}

#[test]
fn accept_negotiation() {
    use Format::{OpenMetrics, Text004};
    assert_eq!(Format::negotiate(None), Text004);
    assert_eq!(Format::negotiate(Some("*/*")), Text004);
    assert_eq!(
        Format::negotiate(Some("text/plain; version=0.0.4")),
        Text004
    );
    assert_eq!(
        Format::negotiate(Some("application/openmetrics-text; version=1.0.0")),
        OpenMetrics
    );
    // Prometheus' own scrape header.
    let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::negotiate(Some(prom)), OpenMetrics);
    assert_eq!(
        Format::negotiate(Some("application/openmetrics-text;q=0.2, text/plain")),
        Text004
    );
    assert_eq!(
        Format::negotiate(Some("application/openmetrics-text;q=0")),
        Text004
    );
}
