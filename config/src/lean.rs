//! The lean reader of customers files: `[[customer]]` tables read straight
//! from the text, one entry at a time, without a TOML document tree.
//!
//! A provisioning system writes a million customers as the same few lines
//! over and over; the `toml` crate spends seconds and gigabytes building a
//! document of them. This reader takes the subset such files use and
//! answers [`NotLean`] for anything else, and the caller then reads the
//! file with `toml` as before, which accepts all of TOML and words every
//! syntax error. So what the reader accepts it must read exactly as `toml`
//! does (the tests below check that against `toml` on generated files);
//! what it refuses costs only time.
//!
//! The subset: blank lines and `#` comments; `[[customer]]` headers, each
//! alone on its line; under each, one `key = value` a line with the bare
//! keys `name`, `plan`, `mode` (strings), `prefixes` (an array of strings,
//! which may span lines and hold comments), `limits` (an inline table of
//! integers) and `blocked` (a boolean), each at most once; basic strings
//! without escapes and literal strings; decimal integers without `_`.
//! Whether a value is valid (a name, a prefix, a plan) is not this
//! module's business: validation sees the values as `toml` would give them.

use std::collections::BTreeMap;

use crate::Mode;

/// The text uses TOML beyond the lean subset (or is not valid TOML): read
/// it with `toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotLean;

/// One `[[customer]]` entry, borrowing the file's text.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Entry<'a> {
    /// `name`.
    pub name: &'a str,
    /// Byte offset of the name's value in the text (for line numbers).
    pub name_at: usize,
    /// `prefixes`, as written.
    pub prefixes: Vec<&'a str>,
    /// `plan`.
    pub plan: Option<&'a str>,
    /// `limits`.
    pub limits: Option<BTreeMap<String, i64>>,
    /// `mode`.
    pub mode: Option<Mode>,
    /// `blocked`.
    pub blocked: Option<bool>,
}

/// Reads entries off a customers file's text, in order.
pub(crate) struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

const NAME: u8 = 1;
const PREFIXES: u8 = 2;
const PLAN: u8 = 4;
const LIMITS: u8 = 8;
const MODE: u8 = 16;
const BLOCKED: u8 = 32;

impl<'a> Reader<'a> {
    /// A reader at the start of `text`.
    pub(crate) fn new(text: &'a str) -> Reader<'a> {
        Reader { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    /// Reads the next entry into `entry` (its vectors are reused): `false`
    /// at the end of the text.
    pub(crate) fn next_entry(&mut self, entry: &mut Entry<'a>) -> Result<bool, NotLean> {
        self.blank_lines()?;
        if self.pos == self.text.len() {
            return Ok(false);
        }
        if !self.bytes()[self.pos..].starts_with(b"[[customer]]") {
            return Err(NotLean);
        }
        self.pos += b"[[customer]]".len();
        self.end_of_line()?;
        entry.prefixes.clear();
        entry.plan = None;
        entry.limits = None;
        entry.mode = None;
        entry.blocked = None;
        let mut seen = 0u8;
        loop {
            self.blank_lines()?;
            if matches!(self.peek(), None | Some(b'[')) {
                break;
            }
            let key = self.bare_key()?;
            self.spaces();
            if self.peek() != Some(b'=') {
                return Err(NotLean);
            }
            self.pos += 1;
            self.spaces();
            let bit = match key {
                "name" => {
                    entry.name_at = self.pos;
                    entry.name = self.string()?;
                    NAME
                }
                "prefixes" => {
                    self.strings(&mut entry.prefixes)?;
                    PREFIXES
                }
                "plan" => {
                    entry.plan = Some(self.string()?);
                    PLAN
                }
                "limits" => {
                    entry.limits = Some(self.integers()?);
                    LIMITS
                }
                "mode" => {
                    entry.mode = Some(self.string()?.parse().map_err(|_| NotLean)?);
                    MODE
                }
                "blocked" => {
                    entry.blocked = Some(self.boolean()?);
                    BLOCKED
                }
                _ => return Err(NotLean),
            };
            if seen & bit != 0 {
                return Err(NotLean);
            }
            seen |= bit;
            self.end_of_line()?;
        }
        if seen & (NAME | PREFIXES) != NAME | PREFIXES {
            return Err(NotLean);
        }
        Ok(true)
    }

    /// Spaces and tabs.
    fn spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// A line break (`\n` or `\r\n`), if one is here.
    fn newline(&mut self) -> bool {
        match self.peek() {
            Some(b'\n') => {
                self.pos += 1;
                true
            }
            Some(b'\r') if self.bytes().get(self.pos + 1) == Some(&b'\n') => {
                self.pos += 2;
                true
            }
            _ => false,
        }
    }

    /// A `#` comment up to (not including) the line break, if one is here.
    fn comment(&mut self) -> Result<(), NotLean> {
        if self.peek() != Some(b'#') {
            return Ok(());
        }
        self.pos += 1;
        while let Some(b) = self.peek() {
            match b {
                b'\n' => break,
                b'\r' if self.bytes().get(self.pos + 1) == Some(&b'\n') => break,
                b'\t' => {}
                0..=0x1f | 0x7f => return Err(NotLean),
                _ => {}
            }
            self.pos += 1;
        }
        Ok(())
    }

    /// Blank and comment lines, and the indentation of the next line (in
    /// an array: the space between elements).
    fn blank_lines(&mut self) -> Result<(), NotLean> {
        loop {
            self.spaces();
            self.comment()?;
            if !self.newline() {
                return Ok(());
            }
        }
    }

    /// Spaces, an optional comment, then a line break or the end.
    fn end_of_line(&mut self) -> Result<(), NotLean> {
        self.spaces();
        self.comment()?;
        if self.newline() || self.pos == self.text.len() {
            Ok(())
        } else {
            Err(NotLean)
        }
    }

    /// A bare key: `A-Z a-z 0-9 _ -`, at least one.
    fn bare_key(&mut self) -> Result<&'a str, NotLean> {
        let start = self.pos;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(NotLean);
        }
        Ok(&self.text[start..self.pos])
    }

    /// A one-line basic string without escapes, or a one-line literal string.
    fn string(&mut self) -> Result<&'a str, NotLean> {
        let quote = match self.peek() {
            Some(q @ (b'"' | b'\'')) => q,
            _ => return Err(NotLean),
        };
        if self.bytes()[self.pos..].starts_with(&[quote; 3]) {
            return Err(NotLean); // multi-line
        }
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err(NotLean),
                Some(b) if b == quote => break,
                Some(b'\\') if quote == b'"' => return Err(NotLean),
                Some(b'\t') => {}
                Some(0..=0x1f | 0x7f) => return Err(NotLean),
                Some(_) => {}
            }
            self.pos += 1;
        }
        let s = &self.text[start..self.pos];
        self.pos += 1;
        Ok(s)
    }

    /// An array of strings.
    fn strings(&mut self, out: &mut Vec<&'a str>) -> Result<(), NotLean> {
        if self.peek() != Some(b'[') {
            return Err(NotLean);
        }
        self.pos += 1;
        loop {
            self.blank_lines()?;
            if self.peek() == Some(b']') {
                break;
            }
            out.push(self.string()?);
            self.blank_lines()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => break,
                _ => return Err(NotLean),
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// An inline table of integers, keys bare or quoted.
    fn integers(&mut self) -> Result<BTreeMap<String, i64>, NotLean> {
        if self.peek() != Some(b'{') {
            return Err(NotLean);
        }
        self.pos += 1;
        let mut table = BTreeMap::new();
        self.spaces();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(table);
        }
        loop {
            self.spaces();
            let key = match self.peek() {
                Some(b'"' | b'\'') => self.string()?,
                _ => self.bare_key()?,
            };
            self.spaces();
            if self.peek() != Some(b'=') {
                return Err(NotLean);
            }
            self.pos += 1;
            self.spaces();
            let value = self.integer()?;
            if table.insert(key.to_owned(), value).is_some() {
                return Err(NotLean);
            }
            self.spaces();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => break,
                _ => return Err(NotLean),
            }
        }
        self.pos += 1;
        Ok(table)
    }

    /// A decimal integer: optional sign, no leading zeros, no `_`, in i64.
    fn integer(&mut self) -> Result<i64, NotLean> {
        let negative = match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                true
            }
            Some(b'+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let start = self.pos;
        let mut value: i64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            let d = i64::from(d - b'0');
            value = value.checked_mul(10).ok_or(NotLean)?;
            value = if negative {
                value.checked_sub(d)
            } else {
                value.checked_add(d)
            }
            .ok_or(NotLean)?;
            self.pos += 1;
        }
        let digits = &self.bytes()[start..self.pos];
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
            return Err(NotLean);
        }
        self.value_ends()?;
        Ok(value)
    }

    /// `true` or `false`.
    fn boolean(&mut self) -> Result<bool, NotLean> {
        let rest = &self.bytes()[self.pos..];
        let (value, len) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return Err(NotLean);
        };
        self.pos += len;
        self.value_ends()?;
        Ok(value)
    }

    /// What may follow a number or boolean: anything that cannot continue it
    /// (a `.`, `_`, `e`, `:`, `-` or a letter would make it a float, a date
    /// or something else).
    fn value_ends(&self) -> Result<(), NotLean> {
        match self.peek() {
            None | Some(b' ' | b'\t' | b',' | b'}' | b']' | b'#' | b'\n' | b'\r') => Ok(()),
            Some(_) => Err(NotLean),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::RawCustomersFile;
    use proptest::prelude::*;

    /// Every entry the lean reader finds in `text`, or `NotLean`.
    fn lean(text: &str) -> Result<Vec<Entry<'_>>, NotLean> {
        let mut reader = Reader::new(text);
        let mut out = Vec::new();
        let mut entry = Entry::default();
        while reader.next_entry(&mut entry)? {
            out.push(entry.clone());
        }
        Ok(out)
    }

    /// An entry as owned values, to compare the two readers.
    type Owned = (
        String,
        usize,
        Vec<String>,
        Option<String>,
        Option<BTreeMap<String, i64>>,
        Option<Mode>,
        Option<bool>,
    );

    /// What `toml` reads, as entries (`None`: toml refuses the text).
    fn toml_entries(text: &str) -> Option<Vec<Owned>> {
        let file: RawCustomersFile = toml::from_str(text).ok()?;
        Some(
            file.customers
                .into_iter()
                .map(|c| {
                    let at = c.name.span().start;
                    (
                        c.name.into_inner(),
                        at,
                        c.prefixes,
                        c.plan,
                        c.limits,
                        c.mode,
                        c.blocked,
                    )
                })
                .collect(),
        )
    }

    /// The lean reader either refuses `text` or reads what toml reads.
    fn agrees(text: &str) -> bool {
        let Ok(entries) = lean(text) else {
            return false;
        };
        let Some(expected) = toml_entries(text) else {
            panic!("lean accepted what toml refuses:\n{text}");
        };
        let got: Vec<_> = entries
            .into_iter()
            .map(|e| {
                (
                    e.name.to_owned(),
                    e.name_at,
                    e.prefixes
                        .iter()
                        .map(|p| (*p).to_owned())
                        .collect::<Vec<_>>(),
                    e.plan.map(str::to_owned),
                    e.limits,
                    e.mode,
                    e.blocked,
                )
            })
            .collect();
        assert_eq!(got, expected, "lean and toml differ on:\n{text}");
        true
    }

    #[test]
    fn reads_what_provisioning_systems_write() {
        let text = "# generated\n\n[[customer]]\nname = \"c0\"\nprefixes = [\"10.0.0.0/29\", \"2001:db8::/64\"]\n\
                    [[customer]]  # the second\n  name = 'c1'   \n\tprefixes = [\n  \"10.0.0.8/32\", # a VPS\n  '2001:db8:1::/64',\n]\r\n\
                    plan = \"mailserver\"\nlimits = { \"5m\" = 1000, 1h = -0, '1d' = +7 }\nmode = \"monitor\"\nblocked = false\n\
                    [[customer]]\nname = \"\"\nprefixes = []\nlimits = {}\nblocked = true";
        assert!(agrees(text));
        let entries = lean(text).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].prefixes, ["10.0.0.8/32", "2001:db8:1::/64"]);
        assert_eq!(entries[1].limits.as_ref().unwrap()["1h"], 0);
        assert!(agrees(""));
        assert!(agrees("# nothing\n\n"));
    }

    #[test]
    fn refuses_what_it_does_not_read_exactly() {
        for text in [
            "[[customer]]\nname = \"a\\u0041\"\nprefixes = []\n", // escapes
            "[[customer]]\nname = \"\"\"a\"\"\"\nprefixes = []\n", // multi-line
            "[[customer]]\nname = \"a\"\n",                       // no prefixes
            "[[customer]]\nname = \"a\"\nname = \"b\"\nprefixes = []\n",
            "[[customer]]\nname = \"a\"\nprefixes = []\nlimits = { 5m = 1, 5m = 2 }\n",
            "[[customer]]\nname = \"a\"\nprefixes = []\nlimits = { 5m = 1_000 }\n",
            "[[customer]]\nname = \"a\"\nprefixes = []\nlimits = { 5m = 01 }\n",
            "[[customer]]\nname = \"a\"\nprefixes = []\nlimits = { 5m = 1.0 }\n",
            "[[customer]]\nname = \"a\"\nprefixes = []\nlimits = { 5m = 1979-05-27 }\n",
            "[[customer]]\nname = \"a\"\nprefixes = []\nlimits = { 5m = 9223372036854775808 }\n",
            "[[customer]]\nname = \"a\"\nprefixes = []\nlimits = { 5m = 1, }\n",
            "[[customer]]\nname = \"a\"\nprefixes = []\nlimits.5m = 1\n",
            "[[customer]]\nname = \"a\"\nprefixes = []\nmode = \"strict\"\n",
            "[[customer]]\nname = \"a\"\nprefixes = []\nblocked = truee\n",
            "[[customer]]\nname = \"a\" prefixes = []\n",
            "[[customer]]\nname = \"a\"\nprefixes = [,]\n",
            "[[customer]]\nname = \"a\"\nprefixes = [\"x\",,]\n",
            "[[customer]]\nname = \"a\"\nprefixes = [\"x\"\n",
            "[[customer]]\n\"name\" = \"a\"\nprefixes = []\n",
            "[[customer]]\nname = \"a\"\nprefixes = []\ncolour = \"red\"\n",
            "[[customer]]\nname = \"a\"\rprefixes = []\n",
            "[[customer]]\nname = \"a\"\nprefixes = [] # \u{7f}\n",
            "[[ customer ]]\nname = \"a\"\nprefixes = []\n",
            "[customer]\nname = \"a\"\nprefixes = []\n",
            "[[customer]]\nname = \"a\"\nprefixes = []\n[customer.limits]\n5m = 1\n",
            "name = \"a\"\n",
            "\u{feff}[[customer]]\nname = \"a\"\nprefixes = []\n",
        ] {
            assert_eq!(lean(text), Err(NotLean), "{text:?}");
        }
    }

    /// Pieces of customers files, the lean subset's and a little beyond.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("[[customer]]".to_owned()),
            Just("[[ customer ]]".to_owned()),
            Just("[customer]".to_owned()),
            Just("\n".to_owned()),
            Just("\r\n".to_owned()),
            Just("\r".to_owned()),
            Just(" ".to_owned()),
            Just("\t".to_owned()),
            Just("# c\n".to_owned()),
            Just("name = ".to_owned()),
            Just("prefixes = ".to_owned()),
            Just("plan = ".to_owned()),
            Just("mode = ".to_owned()),
            Just("limits = ".to_owned()),
            Just("blocked = ".to_owned()),
            Just("5m".to_owned()),
            Just("\"5m\"".to_owned()),
            Just("=".to_owned()),
            Just(",".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just(".".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            Just("\"monitor\"".to_owned()),
            Just("'exempt'".to_owned()),
            "[-+]?[0-9_]{1,21}",
            "\"[a-z0-9./:\\\\ #'\t\u{1}\u{7f}é]{0,8}\"",
            "'[a-z0-9./:\\\\ #\"]{0,8}'",
        ]
    }

    /// A well-formed entry, in the subset's variety of spellings.
    fn entry() -> impl Strategy<Value = String> {
        (
            "[a-z0-9]{0,6}",
            prop::collection::vec("[0-9a-f.:/]{0,12}", 0..3),
            prop::option::of("[a-z]{1,5}"),
            prop::option::of(prop::collection::btree_map(
                "[0-9a-z]{1,3}",
                -99i64..99,
                0..3,
            )),
            prop::option::of(prop_oneof![
                Just("enforce"),
                Just("monitor"),
                Just("exempt")
            ]),
            prop::option::of(any::<bool>()),
            0u8..4,
        )
            .prop_map(|(name, prefixes, plan, limits, mode, blocked, style)| {
                let q = if style & 1 == 0 { '"' } else { '\'' };
                let sep = if style & 2 == 0 {
                    ", "
                } else {
                    ",\n  # note\n  "
                };
                let list: Vec<String> = prefixes.iter().map(|p| format!("{q}{p}{q}")).collect();
                let mut s = format!(
                    "[[customer]]\nname = {q}{name}{q}\nprefixes = [{}]\n",
                    list.join(sep)
                );
                if let Some(plan) = plan {
                    s += &format!("plan = \"{plan}\"  # plan\n");
                }
                if let Some(limits) = limits {
                    let kv: Vec<String> = limits
                        .iter()
                        .map(|(k, v)| format!("\"{k}\" = {v}"))
                        .collect();
                    s += &format!("limits = {{ {} }}\n", kv.join(", "));
                }
                if let Some(mode) = mode {
                    s += &format!("mode = \"{mode}\"\n");
                }
                if let Some(b) = blocked {
                    s += &format!("blocked = {b}\n");
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Random pieces: whatever the lean reader accepts, toml reads the same.
        #[test]
        fn accepts_only_what_toml_reads_the_same(pieces in prop::collection::vec(piece(), 0..40)) {
            let _ = agrees(&pieces.concat());
        }

        /// Well-formed files are read by the lean reader, as toml reads them;
        /// with a cut or an insertion they are refused or still read the same.
        #[test]
        fn well_formed_files_are_read_and_mutations_never_misread(
            entries in prop::collection::vec(entry(), 0..6),
            cut in 0usize..400,
            insert in prop::option::of(piece()),
        ) {
            let text = entries.concat();
            prop_assert!(agrees(&text), "refused a well-formed file:\n{}", text);
            if let Some(insert) = insert {
                let mut at = cut.min(text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let _ = agrees(&format!("{}{insert}{}", &text[..at], &text[at..]));
            }
        }
    }
}
