//! synwall.toml(5) (`config/man/synwall.toml.5`, written by hand) describes
//! every key of the schema.
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
    /// A value: described by a `.B key` line in its table's section.
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

/// The page's sections by title (`.SH [dpdk]` → `[dpdk]`).
fn sections(page: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut title = String::new();
    for line in page.lines() {
        if let Some(t) = line.strip_prefix(".SH ") {
            title = t.trim_matches('"').to_owned();
            out.entry(title.clone()).or_insert_with(String::new);
        } else if let Some(body) = out.get_mut(&title) {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

fn describes(body: &str, key: &str) -> bool {
    body.lines().any(|l| l == format!(".B {key}"))
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
                if !describes(body, key) {
                    out.push(format!("{key}: no `.B {key}` in section {section}"));
                }
            }
            Shape::Table { array, keys } if section == "TOP LEVEL" => {
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
                if !describes(body, key) {
                    out.push(format!("{key}: no `.B {key}` in section {section}"));
                }
                out.extend(missing(keys, section, pages));
            }
            Shape::FreeTable if section != "TOP LEVEL" => {}
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

fn page() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/synwall.toml.5");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_key_of_the_schema_is_in_the_man_page() {
    let Shape::Table { keys, .. } = table(&[]) else {
        panic!("the top level is not a table of the schema");
    };
    let pages = sections(&page());
    let gaps = missing(&keys, "TOP LEVEL", &pages);
    assert!(
        gaps.is_empty(),
        "config/man/synwall.toml.5 does not describe:\n  {}",
        gaps.join("\n  ")
    );
}

/// The probe sees the schema: the keys the design card names and a
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

/// A page without a key's line fails the check (the check can fail).
#[test]
fn a_missing_key_is_found() {
    let Shape::Table { keys, .. } = table(&[]) else {
        panic!("the top level is not a table of the schema");
    };
    let cut = page().replace(".B lease_margin\n", "");
    let gaps = missing(&keys, "TOP LEVEL", &sections(&cut));
    assert_eq!(
        gaps,
        ["lease_margin: no `.B lease_margin` in section [fleet]"]
    );
}
