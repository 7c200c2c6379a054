use std::path::Path;
use std::time::Duration;

use super::*;

const GOOD: &str = r#"
name = "chat"
arrivals = "closed"
timeout = 30
count = 7

[think]
distribution = "lognormal"
mu = 0.5
sigma = 1.0

[[sizes]]
bytes = "50 KiB"
weight = 3
timeout = 5.5

[[sizes]]
bytes = 1000
"#;

#[test]
fn good_file_parses_to_the_exact_model() {
    let m = Model::parse(Path::new("m.toml"), GOOD).unwrap();
    assert_eq!(
        m,
        Model {
            name: "chat".into(),
            sizes: vec![
                SizeChoice {
                    bytes: 50 * 1024,
                    weight: 3,
                    timeout: Duration::from_millis(5500)
                },
                SizeChoice {
                    bytes: 1000,
                    weight: 1,
                    timeout: Duration::from_secs(30)
                },
            ],
            arrivals: Arrivals::Closed {
                think: Some(ThinkTime::Lognormal {
                    mu: 0.5,
                    sigma: 1.0
                })
            },
            count: Some(7),
            duration: None,
        }
    );
    let open = "arrivals = \"open\"\nrate = 4\nduration = 2.5\n[[sizes]]\nbytes = \"1MiB\"\n";
    let m = Model::parse(Path::new("dir/fast-open.toml"), open).unwrap();
    assert_eq!(m.name, "fast-open");
    assert_eq!(m.arrivals, Arrivals::Open { rate: 4.0 });
    assert_eq!(m.duration, Some(Duration::from_millis(2500)));
    assert_eq!(m.sizes[0].bytes, 1 << 20);
    assert_eq!(m.sizes[0].timeout, Duration::from_secs(60));
}

fn err(text: &str) -> String {
    Model::parse(Path::new("bad.toml"), text)
        .unwrap_err()
        .to_string()
}

const SIZE: &str = "\n[[sizes]]\nbytes = 10\n";

#[test]
fn bad_files_name_file_key_and_problem() {
    let cases: &[(String, &str)] = &[
        ("name = ".into(), "bad.toml:1: TOML syntax error"),
        (format!("name = \"a\"\nname = \"b\"{SIZE}"), "bad.toml:2: duplicate key `name` in document root"),
        (format!("colour = 1{SIZE}"), "bad.toml:1: key `colour`: unknown field `colour`, expected one of `name`, `arrivals`, `rate`, `timeout`, `count`, `duration`, `think`, `sizes`"),
        ("name = \"x\"".into(), "bad.toml:1: missing field `sizes`"),
        ("sizes = []".into(), "bad.toml:1: key `sizes`: expected one or more [[sizes]] tables"),
        ("[[sizes]]\nweight = 2".into(), "bad.toml:1: key `sizes[0]`: missing field `bytes`"),
        ("[[sizes]]\nbytes = \"5 parsecs\"".into(), "bad.toml:2: key `sizes[0].bytes`: \"5 parsecs\": unknown unit \"parsecs\": want e.g. \"4096\", \"64 KiB\" or \"512 MB\""),
        ("[[sizes]]\nbytes = 0".into(), "bad.toml:2: key `sizes[0].bytes`: expected a size > 0"),
        ("[[sizes]]\nbytes = 1\nweight = 0".into(), "bad.toml:3: key `sizes[0].weight`: expected an integer from 1 to 4294967295"),
        ("[[sizes]]\nbytes = 1\ncolor = 0".into(), "bad.toml:3: key `sizes[0].color`: unknown field `color`, expected one of `bytes`, `weight`, `timeout`"),
        (format!("arrivals = \"sometimes\"{SIZE}"), "bad.toml:1: key `arrivals`: unknown variant `sometimes`, expected `closed` or `open`"),
        (format!("arrivals = \"open\"{SIZE}"), "bad.toml:1: key `arrivals`: \"open\" needs `rate` (arrivals per second)"),
        (format!("arrivals = \"open\"\nrate = -1{SIZE}"), "bad.toml:2: key `rate`: expected arrivals per second > 0"),
        (format!("rate = 1{SIZE}"), "bad.toml:1: key `rate`: only for arrivals = \"open\""),
        (format!("timeout = \"soon\"{SIZE}"), "bad.toml:1: key `timeout`: \"soon\": expected number at 0: want e.g. \"500ms\", \"30s\" or \"2min\""),
        (format!("timeout = 0{SIZE}"), "bad.toml:1: key `timeout`: must be > 0"),
        (format!("count = 0{SIZE}"), "bad.toml:1: key `count`: expected an integer >= 1"),
        (format!("count = 1\nduration = 2{SIZE}"), "bad.toml:2: key `duration`: give `count` or `duration`, not both"),
        (format!("name = \"a b\"{SIZE}"), "bad.toml:1: key `name`: expected a non-empty string of letters, digits, '-' or '_'"),
        (format!("[think]\nmean = 1{SIZE}"), "bad.toml:1: key `think`: missing field `distribution`"),
        (format!("[think]\ndistribution = \"gauss\"{SIZE}"), "bad.toml:2: key `think.distribution`: unknown variant `gauss`, expected one of `constant`, `uniform`, `exponential`, `lognormal`, `pareto`"),
        (format!("[think]\ndistribution = \"exponential\"\nmu = 1{SIZE}"), "bad.toml:1: key `think`: unknown field `mu`, expected `mean`"),
        (format!("[think]\ndistribution = \"exponential\"{SIZE}"), "bad.toml:1: key `think`: missing field `mean`"),
        (format!("[think]\ndistribution = \"uniform\"\nlow = 5\nhigh = 1{SIZE}"), "bad.toml:1: key `think`: uniform: need 0 <= low < high"),
        (format!("arrivals = \"open\"\nrate = 1\n[think]\ndistribution = \"constant\"\nseconds = 1{SIZE}"), "bad.toml:3: key `think`: only for arrivals = \"closed\" (open arrivals have a rate)"),
    ];
    for (text, want) in cases {
        assert_eq!(&err(text), want, "{text:?}");
    }
}

#[test]
fn from_spec_names_and_files() {
    assert_eq!(Model::from_spec("web").unwrap(), Model::web());
    assert_eq!(
        Model::from_spec("fast").unwrap_err().to_string(),
        "unknown model `fast` (built-in: web, bulk, perf; or a FILE.toml)"
    );
    let e = Model::from_spec("/nonexistent/m.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/nonexistent/m.toml: cannot read model file: "),
        "{e}"
    );
}

#[test]
fn durations_and_sizes_take_the_shared_units() {
    let text = "timeout = \"500ms\"\nduration = \"2min\"\n[[sizes]]\nbytes = \"1.5 MB\"\n\
                timeout = 1.5\n[[sizes]]\nbytes = \"4K\"\n";
    let m = Model::parse(Path::new("u.toml"), text).unwrap();
    assert_eq!(m.duration, Some(Duration::from_secs(120)));
    assert_eq!(m.sizes[0].bytes, 1536 * 1024);
    assert_eq!(m.sizes[0].timeout, Duration::from_millis(1500));
    assert_eq!(m.sizes[1].bytes, 4096);
    assert_eq!(m.sizes[1].timeout, Duration::from_millis(500));
}
