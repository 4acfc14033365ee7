//! A small strict reader of the OpenMetrics text format, enough to check
//! what `/metrics` serves: every family has `# HELP` then `# TYPE` (and
//! `# UNIT` when its name ends in one), every sample belongs to the family
//! declared last under a name its type allows, no sample repeats, label
//! values are quoted and escaped, a histogram's buckets rise to its count,
//! and the text ends with `# EOF`. Anything else is a panic naming the line.

use std::collections::BTreeMap;

/// One sample: its full name, labels and value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// One family: its type, help, and samples.
#[derive(Debug, Default)]
pub(crate) struct Family {
    pub(crate) kind: String,
    pub(crate) help: String,
    pub(crate) samples: Vec<Sample>,
}

impl Family {
    /// The value of the sample named `name` whose labels include `want`.
    pub(crate) fn value(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        let found = self.samples.iter().filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        });
        let values: Vec<f64> = found.map(|s| s.value).collect();
        assert!(values.len() <= 1, "{name} {want:?} matches {values:?}");
        values.first().copied()
    }
}

/// The families of `text`, by name.
pub(crate) fn parse(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut seen = std::collections::BTreeSet::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "the text ends with # EOF");
    for (i, line) in lines[..lines.len() - 1].iter().enumerate() {
        let at = || format!("line {}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            check_name(name, &at);
            match keyword {
                "HELP" => {
                    assert!(!families.contains_key(name), "family declared twice, {}", at());
                    families.insert(
                        name.to_owned(),
                        Family {
                            help: value.to_owned(),
                            ..Family::default()
                        },
                    );
                    current = Some(name.to_owned());
                }
                "TYPE" => {
                    assert_eq!(current.as_deref(), Some(name), "TYPE without its HELP, {}", at());
                    let f = families.get_mut(name).unwrap();
                    assert!(f.kind.is_empty(), "two TYPEs, {}", at());
                    let known = ["counter", "gauge", "histogram", "info", "unknown"];
                    assert!(known.contains(&value), "unknown type, {}", at());
                    f.kind = value.to_owned();
                }
                "UNIT" => {
                    assert_eq!(current.as_deref(), Some(name), "UNIT of another family, {}", at());
                    assert!(
                        name.ends_with(&format!("_{value}")),
                        "the name ends in its unit, {}",
                        at()
                    );
                }
                _ => panic!("unknown keyword, {}", at()),
            }
            continue;
        }
        let family = current
            .as_deref()
            .unwrap_or_else(|| panic!("a sample before any family, {}", at()));
        let sample = parse_sample(line, &at);
        let f = families.get_mut(family).unwrap();
        assert!(!f.kind.is_empty(), "a sample before its TYPE, {}", at());
        let suffixes: &[&str] = match f.kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "info" => &["_info"],
            _ => &[""],
        };
        let ok = suffixes.iter().any(|s| sample.name == format!("{family}{s}"));
        assert!(
            ok,
            "{} is no sample name of {} {family}, {}",
            sample.name,
            f.kind,
            at()
        );
        assert!(
            seen.insert(format!("{} {:?}", sample.name, sample.labels)),
            "repeated sample, {}",
            at()
        );
        f.samples.push(sample);
    }
    for (name, f) in &families {
        assert!(!f.kind.is_empty(), "{name} has no TYPE");
        if f.kind == "histogram" {
            check_histogram(name, f);
        }
    }
    families
}

fn check_name(name: &str, at: &dyn Fn() -> String) {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    assert!(ok, "bad metric name {name:?}, {}", at());
}

fn parse_sample(line: &str, at: &dyn Fn() -> String) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value, {}", at()));
    let name = &line[..name_end];
    check_name(name, at);
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        rest = parse_labels(body, &mut labels, at);
    }
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no space before the value, {}", at()));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad value {v:?}, {}", at())),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// Reads `key="value",...}` into `labels`; what follows the `}`.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut BTreeMap<String, String>,
    at: &dyn Fn() -> String,
) -> &'a str {
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return rest;
        }
        let eq = s.find('=').unwrap_or_else(|| panic!("label without =, {}", at()));
        let key = &s[..eq];
        check_name(key, at);
        let quoted = s[eq + 1..]
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("unquoted label value, {}", at()));
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i + 1,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => panic!("bad escape {other:?}, {}", at()),
                },
                Some((_, c)) => value.push(c),
                None => panic!("unclosed label value, {}", at()),
            }
        };
        assert!(
            labels.insert(key.to_owned(), value).is_none(),
            "repeated label, {}",
            at()
        );
        s = &quoted[end..];
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else {
            assert!(s.starts_with('}'), "labels not closed, {}", at());
        }
    }
}

/// Per label set (but `le`): buckets rise, the last is `+Inf` and equals `_count`.
fn check_histogram(name: &str, f: &Family) {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in f.samples.iter().filter(|s| s.name.ends_with("_bucket")) {
        let mut labels = s.labels.clone();
        let le = labels
            .remove("le")
            .unwrap_or_else(|| panic!("{name}: a bucket without le"));
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap()
        };
        series
            .entry(format!("{labels:?}"))
            .or_default()
            .push((le, s.value));
    }
    for (labels, buckets) in series {
        assert!(
            buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{name} {labels}: {buckets:?}"
        );
        let count = f
            .samples
            .iter()
            .find(|s| s.name == format!("{name}_count") && format!("{:?}", s.labels) == labels);
        let last = buckets.last().unwrap();
        assert_eq!(last.0, f64::INFINITY, "{name} {labels}: the last bucket is +Inf");
        assert_eq!(
            Some(last.1),
            count.map(|c| c.value),
            "{name} {labels}: +Inf is the count"
        );
    }
}

#[test]
fn the_reader_takes_good_text_and_refuses_bad() {
    let good = "# HELP a_x An x.\n# TYPE a_x counter\na_x_total{pool=\"p\\\"q\"} 3\n\
                # HELP a_h H.\n# TYPE a_h histogram\na_h_sum 1.5\na_h_count 2\n\
                a_h_bucket{le=\"0.5\"} 1\na_h_bucket{le=\"+Inf\"} 2\n# EOF\n";
    let f = parse(good);
    assert_eq!(f["a_x"].value("a_x_total", &[("pool", "p\"q")]), Some(3.0));
    for bad in [
        "# HELP a_x An x.\n# TYPE a_x counter\na_x 3\n# EOF\n",
        "# TYPE a_x gauge\na_x 3\n# EOF\n",
        "# HELP a_x An x.\n# TYPE a_x gauge\na_x 3\n",
        "# HELP a_x An x.\n# TYPE a_x gauge\na_x{p=q} 3\n# EOF\n",
        "# HELP a_x An x.\n# TYPE a_x gauge\na_x 3\na_x 4\n# EOF\n",
        "# HELP a_h H.\n# TYPE a_h histogram\na_h_count 2\na_h_bucket{le=\"+Inf\"} 1\n# EOF\n",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse(bad)).is_err(),
            "{bad:?} was taken"
        );
    }
}
