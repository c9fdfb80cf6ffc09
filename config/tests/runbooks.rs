//! Every alert rule (`config/prometheus/synwall-rules.yml`) links to its
//! runbook: a `runbook_url` annotation naming a file of this repository and
//! a heading in it that exists; and every runbook section is some rule's.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("config/ has a parent")
        .to_owned()
}

/// `(alert, runbook_url)` of every rule (`None`: the rule has no link).
fn rules(text: &str) -> Vec<(String, Option<String>)> {
    let docs = YamlLoader::load_from_str(text).expect("the rules file is YAML");
    let mut out = Vec::new();
    for group in docs[0]["groups"].as_vec().expect("groups: a list") {
        for rule in group["rules"].as_vec().expect("rules: a list") {
            let Some(alert) = rule["alert"].as_str() else {
                continue; // a recording rule
            };
            let url = match &rule["annotations"]["runbook_url"] {
                Yaml::String(s) => Some(s.clone()),
                _ => None,
            };
            out.push((alert.to_owned(), url));
        }
    }
    out
}

/// GitHub's anchor of a Markdown heading: lower case, punctuation other
/// than `-` and `_` removed, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of the headings of a Markdown file (outside code blocks),
/// and those of its `##` sections.
fn anchors(markdown: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut all, mut sections) = (BTreeSet::new(), BTreeSet::new());
    let mut code = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            code = !code;
        }
        if code {
            continue;
        }
        if let Some(h) = line.strip_prefix("## ") {
            sections.insert(anchor(h));
        }
        if line.starts_with('#') {
            all.insert(anchor(line.trim_start_matches('#')));
        }
    }
    (all, sections)
}

/// What is wrong with the rules' links: rules without one, links to a file
/// or heading that does not exist, and `##` sections of the linked files
/// that no rule links to.
fn problems(rules_text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut linked: BTreeSet<(String, String)> = BTreeSet::new();
    let mut files = BTreeSet::new();
    for (alert, url) in rules(rules_text) {
        let Some(url) = url else {
            out.push(format!("{alert}: no runbook_url annotation"));
            continue;
        };
        let Some((file, fragment)) = url.split_once('#') else {
            out.push(format!("{alert}: {url} names no section (#anchor)"));
            continue;
        };
        let Ok(text) = std::fs::read_to_string(repo().join(file)) else {
            out.push(format!("{alert}: {file} does not exist"));
            continue;
        };
        if !anchors(&text).0.contains(fragment) {
            out.push(format!("{alert}: {file} has no heading #{fragment}"));
        }
        linked.insert((file.to_owned(), fragment.to_owned()));
        files.insert(file.to_owned());
    }
    for file in files {
        let text = std::fs::read_to_string(repo().join(&file)).unwrap_or_default();
        for section in anchors(&text).1 {
            if !linked.contains(&(file.clone(), section.clone())) {
                out.push(format!("{file}#{section}: no rule links to this section"));
            }
        }
    }
    out
}

fn shipped_rules() -> String {
    let path = repo().join("config/prometheus/synwall-rules.yml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_alert_links_to_its_runbook_section() {
    let text = shipped_rules();
    assert!(rules(&text).len() >= 10, "the rules file lost its rules");
    let found = problems(&text);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn a_rule_without_a_runbook_or_with_a_dead_link_is_found() {
    let text = shipped_rules();
    let dropped = text.replace(
        "runbook_url: \"docs/runbooks.md#synwalltxfull\"",
        "description: \"no link\"",
    );
    assert_eq!(
        problems(&dropped),
        [
            "SynwallTxFull: no runbook_url annotation",
            "docs/runbooks.md#synwalltxfull: no rule links to this section",
        ]
    );
    let dead = text.replace("#synwalltxfull\"", "#synwall-tx-full\"");
    assert_eq!(
        problems(&dead),
        [
            "SynwallTxFull: docs/runbooks.md has no heading #synwall-tx-full",
            "docs/runbooks.md#synwalltxfull: no rule links to this section",
        ]
    );
}

#[test]
fn anchors_are_githubs() {
    assert_eq!(anchor(" SynwallDown"), "synwalldown");
    assert_eq!(anchor("Runbooks: what to do"), "runbooks-what-to-do");
    assert_eq!(anchor("rx_nombuf (NIC)"), "rx_nombuf-nic");
}
