//! synwall.toml(5), made from the configuration reference
//! (`docs/configuration.md`), so the keys are described in one place.
//!
//! The page's markdown is the plain subset that reference uses: `#`
//! headings, paragraphs, `- ` lists, fenced code blocks, `` `code` `` and
//! `[text](link)`. `## X` becomes the man page's section X, a `###`/`####`
//! heading a tagged paragraph (`.TP`), code bold, links their text.

use roff::{bold, roman, Inline, Roff};

/// The configuration reference, as the page is made from it.
pub const CONFIGURATION_MD: &str = include_str!("../../../docs/configuration.md");

/// The man page's name: `synwall.toml.5`.
pub const FILE_NAME: &str = "synwall.toml.5";

/// synwall.toml(5) for synwall `version`, from [`CONFIGURATION_MD`].
pub fn config_man_page(version: &str) -> String {
    render(CONFIGURATION_MD, version)
}

/// The man page made from `markdown`.
pub fn render(markdown: &str, version: &str) -> String {
    let mut roff = Roff::new();
    roff.control("SH", ["NAME"]);
    roff.text([roman(
        "synwall.toml - configuration of synwall, the inline SMTP SYN limiter",
    )]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([bold("/etc/synwall/synwall.toml")]);
    roff.control("SH", ["DESCRIPTION"]);

    let mut paragraph: Vec<&str> = Vec::new();
    let mut code: Option<Vec<&str>> = None;
    // After a section heading or a tag the next paragraph needs no `.PP`.
    let mut fresh = true;
    for line in markdown.lines() {
        if let Some(block) = code.as_mut() {
            if line.starts_with("```") {
                roff.control("PP", []).control("nf", []);
                for l in block.drain(..) {
                    roff.text([roman(l)]);
                }
                roff.control("fi", []);
                code = None;
                fresh = false;
            } else {
                block.push(line);
            }
            continue;
        }
        let heading = line.len() - line.trim_start_matches('#').len();
        let blank = line.trim().is_empty();
        let item = line.starts_with("- ");
        if blank || heading > 0 || item || line.starts_with("```") {
            flush(&mut roff, &mut paragraph, &mut fresh);
        }
        if line.starts_with("```") {
            code = Some(Vec::new());
        } else if heading == 1 {
            // The title: the page has its own NAME.
        } else if heading == 2 {
            roff.control("SH", [line[2..].trim()]);
            fresh = true;
        } else if heading >= 3 {
            roff.control("TP", []);
            roff.text(inlines(line[heading..].trim()));
            fresh = true;
        } else if let Some(rest) = line.strip_prefix("- ") {
            roff.control("IP", ["-", "2"]);
            paragraph.push(rest);
            fresh = true;
        } else if !blank {
            paragraph.push(line.trim_start());
        }
    }
    flush(&mut roff, &mut paragraph, &mut fresh);
    // The date field is left empty, as roff's `control` cannot say "".
    format!(
        ".TH SYNWALL.TOML 5 \"\" \"synwall {version}\" \"File Formats\"\n{}",
        roff.to_roff()
    )
}

fn flush(roff: &mut Roff, paragraph: &mut Vec<&str>, fresh: &mut bool) {
    if paragraph.is_empty() {
        return;
    }
    if !*fresh {
        roff.control("PP", []);
    }
    roff.text(inlines(&paragraph.join(" ")));
    paragraph.clear();
    *fresh = false;
}

/// `` `code` `` bold, `[text](link)` its text, the rest roman.
fn inlines(text: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut plain = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '`' {
            if let Some(end) = rest[1..].find('`') {
                if !plain.is_empty() {
                    out.push(roman(std::mem::take(&mut plain)));
                }
                out.push(bold(&rest[1..1 + end]));
                rest = &rest[end + 2..];
                continue;
            }
        }
        if c == '[' {
            if let Some((label, after)) = link(rest) {
                if !plain.is_empty() {
                    out.push(roman(std::mem::take(&mut plain)));
                }
                out.extend(inlines(label));
                rest = after;
                continue;
            }
        }
        plain.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !plain.is_empty() {
        out.push(roman(plain));
    }
    out
}

/// `[label](target)rest` → `(label, rest)`.
fn link(text: &str) -> Option<(&str, &str)> {
    let close = text.find("](")?;
    let end = text[close..].find(')')? + close;
    let label = &text[1..close];
    (!label.contains('[')).then_some((label, &text[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_become_sections_and_tags() {
        let page = render(
            "# t\n\nIntro `x`.\n\n## [dpdk]\n\n### `cores`\n\nWorker lcores, [see](a.md#b).\n",
            "1.0",
        );
        assert!(
            page.contains(".SH DESCRIPTION\nIntro \\fBx\\fR.\n"),
            "{page}"
        );
        assert!(
            page.contains(".SH [dpdk]\n.TP\n\\fBcores\\fR\nWorker lcores, see.\n"),
            "{page}"
        );
    }

    #[test]
    fn code_blocks_keep_their_lines() {
        let page = render("## E\n\n```toml\n[dpdk]\n.cores = [1]\n```\n", "1.0");
        assert!(
            page.contains(".nf\n[dpdk]\n\\&.cores = [1]\n.fi\n"),
            "{page}"
        );
    }

    /// The shipped page describes the keys of the reference, and no markdown
    /// is left in it.
    #[test]
    fn the_configuration_page_is_made_from_the_reference() {
        let page = config_man_page("0.0.0");
        for key in ["eal_args", "lease_margin", "exempt_destinations", "command"] {
            assert!(page.contains(&format!("\\fB{key}\\fR")), "{key}");
        }
        assert!(page.contains(".SH [[customer]]"));
        assert!(!page.contains('`'), "a backtick is left");
        assert!(!page.contains("]("), "a link is left");
        assert!(
            !page.lines().any(|l| l.starts_with('#')),
            "a heading is left"
        );
    }
}
