//! What ships beside the binaries: their man pages and bash completions,
//! generated from the clap definitions that parse their command lines, so
//! a page cannot describe an option the binary does not take. (The Debian
//! package that carries them is described in this crate's Cargo.toml and
//! built by `scripts/package`.)
//!
//! A binary hands its [`clap::Command`] to [`write_if_asked`] first thing in
//! `main`: `BIN --write-docs DIR` then writes `DIR/BIN.SECTION` (the man
//! page) and `DIR/BIN.bash` (the completion) and exits instead of running.
//! The flag is not part of the command line clap parses, so it shows in no
//! help and no completion. `synwall --write-docs DIR` also writes
//! synwall.toml(5), made from the configuration reference (`reference`).
#![forbid(unsafe_code)]

mod pages;
pub mod reference;

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Command;
use clap_complete::Shell;
use clap_mangen::Man;
use roff::{bold, italic, roman, Roff};

pub use pages::{page, Page};

/// The first argument that asks a binary for its docs: `BIN --write-docs DIR`.
pub const FLAG: &str = "--write-docs";

/// When the process was started as `BIN --write-docs DIR`, writes the
/// binary's man page and completion into DIR and returns the exit code;
/// otherwise `None`, and the binary goes on as usual.
pub fn write_if_asked(command: impl FnOnce() -> Command) -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_none_or(|a| a != FLAG) {
        return None;
    }
    let cmd = command();
    let name = cmd.get_name().to_owned();
    let [_, dir] = args.as_slice() else {
        eprintln!("{name}: usage: {name} {FLAG} DIR");
        return Some(ExitCode::from(2));
    };
    Some(match write(cmd, Path::new(dir)) {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name}: writing its docs to {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    })
}

/// Writes `DIR/NAME.SECTION` and `DIR/NAME.bash` (for synwall also
/// `DIR/synwall.toml.5`); the paths written.
pub fn write(cmd: Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let name = cmd.get_name().to_owned();
    let page = page(&name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("no man page is described for {name:?} (control/dist/src/pages.rs)"),
        )
    })?;
    std::fs::create_dir_all(dir)?;
    let man = dir.join(format!("{name}.{}", page.section));
    std::fs::write(&man, man_page(cmd.clone(), page)?)?;
    let mut written = vec![man];
    if name == "synwall" {
        let version = cmd.get_version().unwrap_or_default().to_owned();
        let config = dir.join(reference::FILE_NAME);
        std::fs::write(&config, reference::config_man_page(&version))?;
        written.push(config);
    }
    let completion = dir.join(format!("{name}.bash"));
    std::fs::write(&completion, bash_completion(cmd))?;
    written.push(completion);
    Ok(written)
}

/// The bash completion script of a command.
pub fn bash_completion(mut cmd: Command) -> Vec<u8> {
    let name = cmd.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(Shell::Bash, &mut cmd, name, &mut out);
    out
}

/// The man page of a command: clap_mangen's title, name, synopsis,
/// description and options; then each subcommand with its own arguments
/// (one page per tool, not one per subcommand: `man synwallctl` shows all
/// of it); then the page's own sections (exit status, files, see also).
pub fn man_page(cmd: Command, page: &Page) -> io::Result<Vec<u8>> {
    // NAME is one line (the page's summary); the binary's own help text,
    // which opens with an example, becomes the DESCRIPTION.
    let description = cmd.get_long_about().or_else(|| cmd.get_about()).cloned();
    let mut cmd = cmd.disable_help_subcommand(true).about(page.summary);
    if let Some(description) = description {
        cmd = cmd.long_about(description);
    }
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_owned();
    let man = Man::new(cmd.clone())
        .section(page.section)
        .source(format!("synwall {version}"))
        .manual(page.manual);
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    let mut roff = Roff::new();
    commands_section(&mut roff, &cmd);
    for (title, text) in page.sections {
        roff.control("SH", [*title]);
        paragraphs(&mut roff, text);
    }
    out.write_all(roff.to_roff().as_bytes())?;
    Ok(once_preamble(out))
}

/// Each of clap_mangen's section renders opens with roff's two-line
/// preamble (the apostrophe string); one at the top of the page is enough.
fn once_preamble(page: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8_lossy(&page);
    let mut seen = std::collections::HashSet::new();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let preamble = line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq");
        if preamble && !seen.insert(line.to_owned()) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

/// `COMMANDS`: each visible subcommand's usage, what it does and its own
/// arguments (the global ones are under OPTIONS already).
fn commands_section(roff: &mut Roff, cmd: &Command) {
    let subs: Vec<&Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    if subs.is_empty() {
        return;
    }
    roff.control("SH", ["COMMANDS"]);
    for sub in subs {
        let usage = sub.clone().render_usage().to_string();
        let usage = usage.trim_start_matches("Usage:").trim();
        roff.control("TP", []);
        roff.text([bold(usage)]);
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            paragraphs(roff, &about.to_string());
        }
        let args: Vec<_> = sub
            .get_arguments()
            .filter(|a| !a.is_hide_set() && !a.is_global_set())
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .collect();
        if args.is_empty() {
            continue;
        }
        roff.control("RS", []);
        for arg in args {
            roff.control("TP", []);
            roff.text(arg_label(arg));
            if let Some(help) = arg.get_long_help().or_else(|| arg.get_help()) {
                paragraphs(roff, &help.to_string());
            }
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            if !defaults.is_empty() && arg.get_action().takes_values() {
                roff.text([roman(format!("[default: {}]", defaults.join(", ")))]);
            }
        }
        roff.control("RE", []);
    }
}

/// `--long <VALUE>` for an option, `<NAME>` for a positional.
fn arg_label(arg: &clap::Arg) -> Vec<roff::Inline> {
    let values: Vec<String> = arg
        .get_value_names()
        .map(|v| v.iter().map(|n| format!("<{n}>")).collect())
        .unwrap_or_else(|| vec![format!("<{}>", arg.get_id().as_str().to_uppercase())]);
    match arg.get_long() {
        Some(long) if arg.get_action().takes_values() => {
            vec![
                bold(format!("--{long}")),
                roman(" "),
                italic(values.join(" ")),
            ]
        }
        Some(long) => vec![bold(format!("--{long}"))],
        None => vec![italic(values.join(" "))],
    }
}

/// Text with blank lines between paragraphs; a line that starts with two
/// spaces is kept as it is (an example command).
fn paragraphs(roff: &mut Roff, text: &str) {
    let mut first = true;
    for block in text.trim_matches('\n').trim_end().split("\n\n") {
        if !first {
            roff.control("PP", []);
        }
        first = false;
        for line in block.lines() {
            if let Some(code) = line.strip_prefix("  ") {
                roff.control("br", []);
                roff.text([roman("    "), bold(code.trim_end())]);
                roff.control("br", []);
            } else {
                roff.text([roman(line.trim())]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn toy() -> Command {
        Command::new("synwallctl")
            .version("1.2.3")
            .about("toy")
            .arg(Arg::new("socket").long("socket").global(true))
            .subcommand(
                Command::new("block")
                    .about("Block a customer.")
                    .arg(Arg::new("customer").required(true))
                    .arg(Arg::new("reason").long("reason").help("Why."))
                    .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue)),
            )
    }

    #[test]
    fn a_subcommand_shows_with_its_arguments() {
        let page = page("synwallctl").expect("described");
        let text = String::from_utf8(man_page(toy(), page).unwrap()).unwrap();
        assert!(text.contains("\n.TH synwallctl 8"), "{text}");
        assert_eq!(text.matches(".el .ds Aq").count(), 1, "{text}");
        assert!(!text.contains("[default: false]"), "{text}");
        assert!(text.contains(".SH COMMANDS"), "{text}");
        assert!(
            text.contains("synwallctl block [OPTIONS] <customer>"),
            "{text}"
        );
        assert!(text.contains("\\-\\-reason"), "{text}");
        assert!(text.contains("Why."), "{text}");
        assert!(text.contains(".SH \"EXIT STATUS\""), "{text}");
    }

    #[test]
    fn an_undescribed_binary_is_an_error_not_a_page() {
        let dir = std::env::temp_dir().join(format!("synwall-dist-{}", std::process::id()));
        let err = write(Command::new("nonesuch"), &dir).unwrap_err();
        assert!(err.to_string().contains("nonesuch"), "{err}");
        assert!(!dir.join("nonesuch.1").exists());
    }

    #[test]
    fn the_completion_completes_subcommands() {
        let text = String::from_utf8(bash_completion(toy())).unwrap();
        assert!(text.contains("complete -F"), "{text}");
        assert!(text.contains("block"), "{text}");
    }
}
