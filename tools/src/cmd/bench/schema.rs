//! The shape of a bench JSON report, checked against a written spec (`benches/
//! bench-schema.txt` for `kistrel.bench/4`), so that .ci/run and users can rely on field
//! names and types: one line per path, `PATH TYPES`.
//!
//! ```text
//! config.circuits               number
//! figures.*                     object          # `*`: any key (a map)
//! rounds[].phases[].cpu[].cpu_s number|null     # `[]`: every element of an array
//! placement.nodes[].node        string  ?       # `?`: may be absent (an empty array)
//! ```
//!
//! Every path in the report must match a line whose types include its type, and every line
//! without `?` must match some path.

use serde_json::Value;

/// The spec of the `kistrel.bench/4` report.
pub const BENCH_SCHEMA: &str = include_str!("../../../../benches/bench-schema.txt");

/// The spec of the `kistrel.bench-experiment/2` report (`kistrel bench experiment`).
pub const BENCH_EXPERIMENT_SCHEMA: &str =
    include_str!("../../../../benches/bench-experiment-schema.txt");

/// The spec of the `kistrel.bench-relay/1` report (`kistrel bench relay`).
pub const BENCH_RELAY_SCHEMA: &str = include_str!("../../../../benches/bench-relay-schema.txt");

/// One spec line.
#[derive(Debug)]
struct Line<'a> {
    segments: Vec<&'a str>,
    types: Vec<&'a str>,
    optional: bool,
    text: &'a str,
}

fn parse(spec: &str) -> Vec<Line<'_>> {
    spec.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|text| {
            let mut words = text.split_whitespace();
            let path = words.next().unwrap_or("");
            let types = words.next().unwrap_or("").split('|').collect();
            Line {
                segments: split_path(path),
                types,
                optional: words.next() == Some("?"),
                text,
            }
        })
        .collect()
}

/// `a.b[].c` -> `["a", "b", "[]", "c"]`.
fn split_path(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        match part.strip_suffix("[]") {
            Some(name) => {
                if !name.is_empty() {
                    out.push(name);
                }
                out.push("[]");
            }
            None => out.push(part),
        }
    }
    out
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every (path, type) of `v`, arrays' elements under `[]`.
fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, &'static str)>) {
    out.push((path.clone(), type_of(v)));
    match v {
        Value::Array(items) => {
            for item in items {
                path.push("[]".into());
                walk(item, path, out);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                path.push(k.clone());
                walk(item, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn matches(line: &[&str], path: &[String]) -> bool {
    line.len() == path.len()
        && line
            .iter()
            .zip(path)
            .all(|(l, p)| *l == "*" && p != "[]" || l == p)
}

/// What is wrong with `report` against `spec`: one line per problem, empty when it fits.
pub fn check(report: &Value, spec: &str) -> Vec<String> {
    let lines = parse(spec);
    let mut paths = Vec::new();
    walk(report, &mut Vec::new(), &mut paths);
    let mut used = vec![false; lines.len()];
    let mut problems: Vec<String> = Vec::new();
    let mut note = |p: String| {
        if !problems.contains(&p) {
            problems.push(p);
        }
    };
    for (path, ty) in paths.iter().filter(|(p, _)| !p.is_empty()) {
        let shown = path.join(".").replace(".[]", "[]");
        match lines.iter().position(|l| matches(&l.segments, path)) {
            None => note(format!("{shown}: not in the schema")),
            Some(i) => {
                used[i] = true;
                if !lines[i].types.contains(ty) {
                    note(format!(
                        "{shown}: {ty}, the schema says {}",
                        lines[i].types.join("|")
                    ));
                }
            }
        }
    }
    for (l, _) in lines.iter().zip(&used).filter(|(l, u)| !**u && !l.optional) {
        note(format!("missing: {}", l.text));
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SPEC: &str = "\
schema string
n number|null
xs array
xs[] object
xs[].a string
m object
m.* number
opt array ?
opt[] string ?
";

    #[test]
    fn fitting_reports_pass_and_each_problem_is_named() {
        let ok = json!({"schema": "s", "n": null, "xs": [{"a": "x"}], "m": {"k1": 1, "k2": 2}});
        assert_eq!(check(&ok, SPEC), Vec::<String>::new());
        let bad = json!({
            "schema": 2, "xs": [{"a": "x", "b": 1}], "m": {"k": "v"}, "extra": true
        });
        assert_eq!(
            check(&bad, SPEC),
            [
                "extra: not in the schema",
                "m.k: string, the schema says number",
                "schema: number, the schema says string",
                "xs[].b: not in the schema",
                "missing: n number|null",
            ]
        );
        // An empty array leaves its elements' lines unused: only optional ones may be.
        let empty = json!({"schema": "s", "n": 1, "xs": [], "m": {}});
        assert_eq!(
            check(&empty, SPEC),
            [
                "missing: xs[] object",
                "missing: xs[].a string",
                "missing: m.* number"
            ]
        );
    }
}
