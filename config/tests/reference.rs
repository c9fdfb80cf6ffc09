//! The configuration reference, `docs/configuration.md` (from which
//! synwall.toml(5) is generated), describes every key of the schema, each
//! exactly once: a `### \`key\`` heading (`####` for the keys of a table
//! inside a table, `[control] hook`) in the section `## [table]`
//! (`## Top level` for the top-level keys).
//!
//! The keys come from the schema itself, not from a list kept here: the
//! raw structs reject unknown keys, and serde's error for one names every
//! key the table takes ("unknown field `__probe__`, expected one of ...").
//! A table key is probed again as `[table]` and `[[table]]`, so a new
//! struct nested in the schema is found too.
use std::collections::BTreeMap;
use std::path::Path;

use synwall_config::raw::RawConfig;

const PROBE: &str = "__probe__";

/// What a key holds, as far as the page is concerned.
#[derive(Debug)]
enum Shape {
    /// A value: described by a `### \`key\`` heading in its table's section.
    Leaf,
    /// A table of the schema with these keys (`[[...]]` when `array`).
    Table {
        array: bool,
        keys: Vec<(String, Shape)>,
    },
    /// A table whose keys are the operator's (`[windows]`, `[plans.NAME]`).
    FreeTable,
}

/// The keys serde expects where `header` puts the probe, if the probe was
/// refused as an unknown field; `Ok(None)` if it was taken as a number or
/// as a table (a free map: `[windows]`, `[plans]`); `Err` if it was refused
/// for another reason (not a table there).
fn expected(header: &str) -> Result<Option<Vec<String>>, String> {
    let as_table = format!("{header}\n{PROBE} = {{}}\n");
    if toml::from_str::<RawConfig>(&as_table).is_ok() {
        return Ok(None);
    }
    let text = format!("{header}\n{PROBE} = 1\n");
    let err = match toml::from_str::<RawConfig>(&text) {
        Ok(_) => return Ok(None),
        Err(e) => e.to_string(),
    };
    let Some((_, rest)) = err.split_once(&format!("unknown field `{PROBE}`")) else {
        return Err(err);
    };
    let keys: Vec<String> = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!keys.is_empty(), "no keys in serde's error: {err}");
    Ok(Some(keys))
}

/// The shape of the table at `path` (empty: the top level).
fn table(path: &[String]) -> Shape {
    let dotted = path.join(".");
    let attempts: Vec<(bool, String)> = if path.is_empty() {
        vec![(false, String::new())]
    } else {
        vec![
            (false, format!("[{dotted}]")),
            (true, format!("[[{dotted}]]")),
        ]
    };
    for (array, header) in attempts {
        match expected(&header) {
            Ok(Some(keys)) => {
                let keys = keys
                    .into_iter()
                    .map(|k| {
                        let mut sub = path.to_vec();
                        sub.push(k.clone());
                        (k, table(&sub))
                    })
                    .collect();
                return Shape::Table { array, keys };
            }
            Ok(None) => return Shape::FreeTable,
            Err(_) => continue,
        }
    }
    Shape::Leaf
}

/// The page's `##` sections by title (`## [dpdk]` → `[dpdk]`), outside
/// code blocks.
fn sections(page: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut title = String::new();
    let mut code = false;
    for line in page.lines() {
        if line.starts_with("```") {
            code = !code;
        }
        if let Some(t) = line.strip_prefix("## ").filter(|_| !code) {
            title = t.trim().to_owned();
            out.entry(title.clone()).or_insert_with(String::new);
        } else if let Some(body) = out.get_mut(&title) {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// How many headings of `key` the section's body has (`###` or `####`).
fn headings(body: &str, key: &str) -> usize {
    body.lines()
        .filter(|l| {
            let text = l.trim_start_matches('#');
            l.len() - text.len() >= 3 && text == format!(" `{key}`")
        })
        .count()
}

fn describes(body: &str, key: &str) -> Result<(), String> {
    match headings(body, key) {
        1 => Ok(()),
        0 => Err(format!("no heading `{key}`")),
        n => Err(format!("{n} headings `{key}` (one is the rule)")),
    }
}

/// What the page lacks for the keys of one table: `section` is where its
/// leaves must be described.
fn missing(
    keys: &[(String, Shape)],
    section: &str,
    pages: &BTreeMap<String, String>,
) -> Vec<String> {
    let body = pages.get(section).map(String::as_str).unwrap_or("");
    let mut out = Vec::new();
    for (key, shape) in keys {
        match shape {
            Shape::Leaf => {
                if let Err(e) = describes(body, key) {
                    out.push(format!("{key}: {e} in section {section}"));
                }
            }
            Shape::Table { array, keys } if section == TOP => {
                let title = if *array {
                    format!("[[{key}]]")
                } else {
                    format!("[{key}]")
                };
                if pages.contains_key(&title) {
                    out.extend(missing(keys, &title, pages));
                } else {
                    out.push(format!("{key}: no section {title}"));
                }
            }
            // A table inside a table ([control] hook): its name and keys
            // are described in the outer table's section.
            Shape::Table { keys, .. } => {
                if let Err(e) = describes(body, key) {
                    out.push(format!("{key}: {e} in section {section}"));
                }
                out.extend(missing(keys, section, pages));
            }
            Shape::FreeTable if section != TOP => {}
            Shape::FreeTable => {
                let found = pages
                    .keys()
                    .any(|t| t == &format!("[{key}]") || t.starts_with(&format!("[{key}.")));
                if !found {
                    out.push(format!("{key}: no section [{key}] or [{key}.NAME]"));
                }
            }
        }
    }
    out
}

/// The section of the top-level keys.
const TOP: &str = "Top level";

fn page() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_key_of_the_schema_is_in_the_reference_once() {
    let Shape::Table { keys, .. } = table(&[]) else {
        panic!("the top level is not a table of the schema");
    };
    let pages = sections(&page());
    let gaps = missing(&keys, TOP, &pages);
    assert!(
        gaps.is_empty(),
        "docs/configuration.md does not describe, once:\n  {}",
        gaps.join("\n  ")
    );
}

/// The probe sees the schema: the keys the issue's design card names and a
/// nested one are found, with the shapes they have.
#[test]
fn the_probe_finds_nested_and_array_tables() {
    let Shape::Table { keys, .. } = table(&[]) else {
        panic!("the top level is not a table of the schema");
    };
    let top: BTreeMap<&str, &Shape> = keys.iter().map(|(k, s)| (k.as_str(), s)).collect();
    assert!(matches!(top["customers_file"], Shape::Leaf));
    assert!(matches!(top["windows"], Shape::FreeTable));
    assert!(matches!(top["plans"], Shape::FreeTable));
    assert!(matches!(top["link"], Shape::Table { array: true, .. }));
    assert!(matches!(top["customer"], Shape::Table { array: true, .. }));
    let Shape::Table { array: false, keys } = top["control"] else {
        panic!("[control]: {:?}", top["control"]);
    };
    let hook = keys
        .iter()
        .find(|(k, _)| k == "hook")
        .expect("control.hook");
    let Shape::Table { keys, .. } = &hook.1 else {
        panic!("control.hook: {:?}", hook.1);
    };
    let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["command", "timeout"]);
}

/// A page without a key's heading, or with one twice, fails the check
/// (the check can fail).
#[test]
fn a_missing_or_repeated_key_is_found() {
    let Shape::Table { keys, .. } = table(&[]) else {
        panic!("the top level is not a table of the schema");
    };
    let page = page();
    let cut = page.replace("### `lease_margin`\n", "");
    assert_eq!(
        missing(&keys, TOP, &sections(&cut)),
        ["lease_margin: no heading `lease_margin` in section [fleet]"]
    );
    let twice = page.replace("### `tick`\n", "### `tick`\n\n### `tick`\n");
    assert_eq!(
        missing(&keys, TOP, &sections(&twice)),
        ["tick: 2 headings `tick` (one is the rule) in section [control]"]
    );
    let nested = page.replace("#### `timeout`\n", "");
    assert_eq!(
        missing(&keys, TOP, &sections(&nested)),
        ["timeout: no heading `timeout` in section [control]"]
    );
}
