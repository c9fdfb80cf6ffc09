//! What a man page says beyond the command line: its section, and the
//! sections clap cannot know (exit status, signals, files, see also).

/// One binary's page.
#[derive(Debug)]
pub struct Page {
    /// The manual section: 8 for what an administrator runs, 1 for tools.
    pub section: &'static str,
    /// What the command is, in one line (the NAME section).
    pub summary: &'static str,
    /// The manual's name in the page's header.
    pub manual: &'static str,
    /// `(TITLE, TEXT)` after the options and commands; paragraphs are
    /// separated by a blank line, lines indented by two spaces are kept.
    pub sections: &'static [(&'static str, &'static str)],
}

/// The page of the binary called `name`, if it has one.
pub fn page(name: &str) -> Option<&'static Page> {
    match name {
        "synwall" => Some(&SYNWALL),
        "synwallctl" => Some(&SYNWALLCTL),
        "synwall-gen" => Some(&SYNWALL_GEN),
        _ => None,
    }
}

const ADMIN: &str = "System Administration";

static SYNWALL: Page = Page {
    section: "8",
    summary: "inline appliance that limits outbound SMTP connections (TCP SYNs) per customer, on DPDK ports",
    manual: ADMIN,
    sections: &[
        (
            "SIGNALS",
            "SIGHUP re-reads the configuration and the customers file; a bad one is \
rejected with the reason and nothing changes. SIGINT and SIGTERM stop synwall \
after it writes its last state snapshot.",
        ),
        (
            "EXIT STATUS",
            "0: stopped cleanly, or --check found the configuration valid.

2: the configuration is invalid (the message names the file, the key and the reason).

1: the appliance failed to start or to run (EAL, ports, state).",
        ),
        (
            "FILES",
            "/etc/synwall/synwall.toml: the configuration (synwall.toml(5)).

/run/synwall/control.sock: the control socket synwallctl(8) talks to.

/var/lib/synwall/state.json: windows, blocks and offences, restored at start.

/var/log/synwall/events.jsonl: blocks, unblocks, reloads, one JSON object a line.

/usr/lib/systemd/system/synwall.service: the systemd unit (installed, not enabled).",
        ),
        (
            "EXAMPLES",
            "  synwall --config /etc/synwall/synwall.toml --check
  systemctl enable --now synwall
  systemctl reload synwall",
        ),
        (
            "SEE ALSO",
            "synwallctl(8), synwall.toml(5), synwall-gen(1), systemctl(1); \
/usr/share/doc/synwall/README.md (a map of the docs), /usr/share/doc/synwall/docs/runbooks.md",
        ),
    ],
};

static SYNWALLCTL: Page = Page {
    section: "8",
    summary: "control a running synwall over its control socket",
    manual: ADMIN,
    sections: &[
        (
            "EXIT STATUS",
            "0: done.

1: the appliance refused the request (its reason is printed).

2: usage error.

3: cannot reach the appliance (no socket, access denied, no answer).

4: the process on the socket does not run as root, as the caller or as --server-user: nothing was sent to it.",
        ),
        (
            "EXAMPLES",
            "  synwallctl status
  synwallctl customers --window 1h --top 20
  synwallctl block acme --duration 2h --reason 'abuse ticket 4711'
  synwallctl unblock acme --reason 'cleaned up'
  synwallctl set-limit --customer acme 5m 500 --persist
  synwallctl --json blocks",
        ),
        (
            "SEE ALSO",
            "synwall(8), synwall.toml(5); /usr/share/doc/synwall/docs/runbooks.md",
        ),
    ],
};

static SYNWALL_GEN: Page = Page {
    section: "1",
    summary: "traffic generator bench for synwall: rate, loss, latency and verdicts",
    manual: "User Commands",
    sections: &[
        (
            "EXIT STATUS",
            "0: success. 1: verify found a discrepancy between what synwall did and what the \
profile expects. 2: bad usage or profile. 3: a run failed.",
        ),
        ("SEE ALSO", "synwall(8), synwallctl(8), dpdk-testpmd(1)"),
    ],
};
