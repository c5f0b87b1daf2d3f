//! OpenMetrics text as a scraper reads it, strictly: every sample after its
//! family's TYPE line, counters named `_total`, numbers that parse.

use std::collections::BTreeMap;

/// Parses OpenMetrics text: (family types, samples as (name, labels, value)).
/// A counter family `x` has samples named `x_total`.
pub type Samples = Vec<(String, BTreeMap<String, String>, f64)>;

pub fn parse(text: &str) -> (BTreeMap<String, String>, Samples) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            assert!(
                ["counter", "gauge"].contains(&kind),
                "unknown type in {line}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{line} twice"
            );
            continue;
        }
        if line.starts_with("# HELP ") || line == "# EOF" || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("a bad value in {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((n, l)) => {
                let l = l.strip_suffix('}').expect(line);
                let labels = l
                    .split("\",")
                    .map(|kv| {
                        let (k, v) = kv.split_once("=\"").expect(line);
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (n.to_string(), labels)
            }
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "a bad metric name in {line}"
        );
        let family = match name.strip_suffix("_total") {
            Some(base) if types.get(base).map(String::as_str) == Some("counter") => base,
            _ => &name,
        };
        assert!(
            types.contains_key(family),
            "{name} has no TYPE line before it"
        );
        samples.push((name, labels, value));
    }
    (types, samples)
}

/// The sum of the samples named `name` whose labels include `labels`.
pub fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
        .sum()
}
