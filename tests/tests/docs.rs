//! The docs keep their promises to a reader who follows them: every
//! relative link in README.md and docs/*.md reaches a file and, with an
//! anchor, a heading of it (GitHub's slugs); README's map names every page
//! of docs/; every synwallctl command has its section in docs/operating.md.
//! (Every config key in docs/configuration.md: `config/tests/reference.rs`;
//! every socket command in docs/protocol.md: `protocol_doc`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use synwall_protocol::COMMANDS;
use synwall_tests::*;

/// The lines of a markdown text outside fenced code blocks, 1-based.
fn prose(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut fenced = false;
    text.lines().enumerate().filter_map(move |(i, line)| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return None;
        }
        (!fenced).then_some((i + 1, line))
    })
}

/// GitHub's anchor for a heading: lower case, punctuation but `-` and `_`
/// dropped, spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings; a repeated slug gets `-1`, `-2`, ...
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose(text) {
        let hashes = line.len() - line.trim_start_matches('#').len();
        if hashes == 0 || hashes > 6 || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 { base } else { format!("{base}-{n}") });
        *n += 1;
    }
    out
}

/// The targets of a line's `[text](target)` links, outside `code` spans.
fn links(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut code = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'`' {
            code = !code;
        } else if !code && b == b']' && bytes.get(i + 1) == Some(&b'(') {
            if let Some(end) = line[i + 2..].find(')') {
                out.push(line[i + 2..i + 2 + end].to_owned());
            }
        }
    }
    out
}

/// README.md and every page of docs/, relative to the workspace root.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("reading docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| p.strip_prefix(root).expect("under the root").to_owned())
        .collect();
    docs.sort();
    out.extend(docs);
    out
}

/// What is wrong with the relative links of the pages under `root`.
fn broken_links(root: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    for page in pages(root) {
        let text = std::fs::read_to_string(root.join(&page)).expect("reading a page");
        let dir = page.parent().unwrap_or(Path::new(""));
        for (n, line) in prose(&text) {
            for target in links(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let at = format!("{}:{n}: ({target})", page.display());
                let (file, anchor) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target.as_str(), None),
                };
                let path = if file.is_empty() {
                    page.clone()
                } else {
                    dir.join(file)
                };
                let Ok(body) = std::fs::read_to_string(root.join(&path)) else {
                    if !root.join(&path).is_dir() {
                        errors.push(format!("{at}: no file {}", path.display()));
                    }
                    continue;
                };
                if let Some(anchor) = anchor {
                    if !anchors(&body).contains(anchor) {
                        errors.push(format!("{at}: no heading #{anchor} in {}", path.display()));
                    }
                }
            }
        }
    }
    errors
}

#[test]
fn every_relative_link_reaches_a_file_and_a_heading() {
    let errors = broken_links(workspace_root());
    assert!(
        errors.is_empty(),
        "broken links:\n  {}",
        errors.join("\n  ")
    );
}

/// The check finds a missing file and a missing heading (it can fail); a
/// pending page that is not there yet passes.
#[test]
fn a_broken_link_is_found() {
    let dir = std::env::temp_dir().join(format!("synwall-docs-links-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(
        dir.join("README.md"),
        "# t\n\n[a](docs/a.md#the-b-part) [gone](docs/gone.md) `[not](a link)`\n\n\
         ```\n[not](in code)\n```\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("docs/a.md"),
        "# A\n\n## The `b` part!\n\n## Twice\n\n## Twice\n\n[self](#twice-1) [miss](#twice-2)\n",
    )
    .unwrap();
    let errors = broken_links(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        errors,
        [
            "README.md:3: (docs/gone.md): no file docs/gone.md",
            "docs/a.md:9: (#twice-2): no heading #twice-2 in docs/a.md",
        ]
    );
}

#[test]
fn the_readme_maps_every_page_of_docs() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let linked: BTreeSet<String> = prose(&readme)
        .flat_map(|(_, l)| links(l))
        .map(|t| t.split('#').next().unwrap_or_default().to_owned())
        .collect();
    let unmapped: Vec<String> = pages(root)
        .into_iter()
        .skip(1)
        .map(|p| p.display().to_string())
        .filter(|p| !linked.contains(p))
        .collect();
    assert!(
        unmapped.is_empty(),
        "README.md's map does not link: {}",
        unmapped.join(", ")
    );
}

/// The subcommands `synwallctl --help` lists.
fn synwallctl_commands() -> Vec<String> {
    let out = Command::new(synwallctl_bin())
        .arg("--help")
        .output()
        .expect("running synwallctl --help");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn every_synwallctl_command_has_a_section_in_operating() {
    let page = std::fs::read_to_string(workspace_root().join("docs/operating.md"))
        .expect("docs/operating.md");
    let sections: BTreeSet<&str> = prose(&page)
        .filter_map(|(_, l)| l.strip_prefix("### synwallctl "))
        .collect();
    let from_help = synwallctl_commands();
    assert!(
        from_help.len() >= COMMANDS.len(),
        "synwallctl --help lists {from_help:?}"
    );
    let missing: BTreeSet<&str> = COMMANDS
        .iter()
        .copied()
        .chain(from_help.iter().map(String::as_str))
        .filter(|c| !sections.contains(c))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/operating.md has no `### synwallctl NAME` section for: {missing:?}"
    );
}
