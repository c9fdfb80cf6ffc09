//! Customers collected across the config file and the customers file, and
//! validated: names and prefixes, plans, limits, and that no name or prefix
//! is given twice.
//!
//! Duplicates are found in bulk, by sorting every name's hash and every
//! prefix with where it was given, when a file is done (or has failed):
//! at a million customers, hash maps took a cache miss or two per insert
//! into 80 MB of tables (about a second); sorting streams. The error is
//! the one a check in file order would have stopped at first: each
//! problem has a position (customer, then the order of the checks on it)
//! and the earliest wins.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::net::IpAddr;

use rustc_hash::FxBuildHasher;

use super::{bare_or_quoted, limits, valid_customer_name, File, MAX_NAME};
use crate::lean::{Entry, NotLean, Reader};
use crate::raw::RawCustomer;
use crate::{ConfigError, Customer, Limits, Prefix, Window};

/// Where a problem is: the customer's id, then the order of the checks on
/// it (name, duplicate name, empty prefixes, then per prefix its syntax and
/// whether it is taken, then the plan and the limits).
type Position = (u32, u64);

const NAME: u64 = 0;
const DUPLICATE_NAME: u64 = 1;
const NO_PREFIXES: u64 = 2;
const PLAN: u64 = u64::MAX - 1;
const LIMITS: u64 = u64::MAX;

fn prefix_syntax(j: usize) -> u64 {
    3 + 2 * j as u64
}

fn prefix_taken(j: usize) -> u64 {
    4 + 2 * j as u64
}

/// A prefix's place: customer id (high 32 bits) and index in its list.
fn place(id: u32, j: usize) -> u64 {
    (u64::from(id) << 32) | (j as u64 & 0xffff_ffff)
}

/// Customers being collected. Names are borrowed from the texts (`'t`)
/// until the duplicate checks are done.
pub(super) struct Customers<'w, 't> {
    windows: &'w [Window],
    plans: &'w BTreeMap<String, Limits>,
    pub(super) list: Vec<Customer>,
    /// Per id: the name and its offset in its file's text.
    names: Vec<(&'t str, usize)>,
    /// Per id, the name's hash: sorted with the id to find duplicates.
    name_keys: Vec<(u64, u32)>,
    /// IPv4 prefixes as `addr << 8 | len`, and IPv6 ones, with their place.
    v4: Vec<(u64, u64)>,
    v6: Vec<(u128, u8, u64)>,
    /// Customers from the main file, once the customers file is being read.
    pub(super) first_file_len: Option<usize>,
    pub(super) main_path: std::path::PathBuf,
}

impl<'w, 't> Customers<'w, 't> {
    pub(super) fn new(windows: &'w [Window], plans: &'w BTreeMap<String, Limits>) -> Self {
        Customers {
            windows,
            plans,
            list: Vec::new(),
            names: Vec::new(),
            name_keys: Vec::new(),
            v4: Vec::new(),
            v6: Vec::new(),
            first_file_len: None,
            main_path: std::path::PathBuf::new(),
        }
    }

    /// Where customer `id` was defined, for "already used by" messages.
    fn origin(&self, id: u32) -> String {
        let id = id as usize;
        let name = self.names[id].0;
        match self.first_file_len {
            Some(first) if id < first => {
                format!("customer[{id}] ({name:?}) in {}", self.main_path.display())
            }
            Some(first) => format!("customer[{}] ({name:?})", id - first),
            None => format!("customer[{id}] ({name:?})"),
        }
    }

    /// The first customer of the file being read.
    fn base(&self) -> usize {
        self.first_file_len.unwrap_or(0)
    }

    /// The `[[customer]]` entries toml read from `file`.
    pub(super) fn add_raw(
        &mut self,
        file: &File<'_>,
        raw: &'t [RawCustomer],
    ) -> Result<(), ConfigError> {
        self.reserve(raw.len());
        let mut failed = None;
        for customer in raw {
            let entry = Entry {
                name: customer.name.get_ref(),
                name_at: customer.name.span().start,
                prefixes: customer.prefixes.iter().map(String::as_str).collect(),
                plan: customer.plan.as_deref(),
                limits: customer.limits.clone(),
                mode: customer.mode,
                blocked: customer.blocked,
            };
            if let Err(e) = self.add(file, &entry) {
                failed = Some(e);
                break;
            }
        }
        self.finish(file, failed)
    }

    /// The entries of customers file `file` (its `text`) if the lean reader
    /// reads it whole (`None`: it uses TOML beyond the lean subset; read
    /// it with toml). A validation error is returned only once the whole
    /// file has been read: a syntax error further on is toml's to report.
    pub(super) fn add_lean(
        &mut self,
        file: &File<'_>,
        text: &'t str,
    ) -> Result<Option<()>, ConfigError> {
        // About 80 bytes a customer in a generated file: reserve once
        // rather than grow a million entries several times.
        self.reserve(text.len() / 80);
        let mut reader = Reader::new(text);
        let mut entry = Entry::default();
        let mut failed = None;
        loop {
            match reader.next_entry(&mut entry) {
                Err(NotLean) => return Ok(None),
                Ok(false) => break,
                Ok(true) if failed.is_some() => {}
                Ok(true) => {
                    if let Err(e) = self.add(file, &entry) {
                        failed = Some(e);
                    }
                }
            }
        }
        self.finish(file, failed).map(Some)
    }

    fn reserve(&mut self, customers: usize) {
        self.list.reserve(customers);
        self.names.reserve(customers);
        self.name_keys.reserve(customers);
        self.v4.reserve(customers);
        self.v6.reserve(customers);
    }

    /// The first problem of the file just read: `failed`, the first
    /// problem found in order, unless a duplicate comes before it.
    fn finish(
        &mut self,
        file: &File<'_>,
        failed: Option<(Position, ConfigError)>,
    ) -> Result<(), ConfigError> {
        let dup = self.first_duplicate();
        match (failed, dup) {
            (None, None) => Ok(()),
            (Some((at, e)), Some((dup_at, _))) if at < dup_at => Err(e),
            (Some((_, e)), None) => Err(e),
            (_, Some(((id, stage), why))) => {
                let field = match stage {
                    DUPLICATE_NAME => "name".to_owned(),
                    s => format!("prefixes[{}]", (s - 4) / 2),
                };
                Err(self.error_at(file, id, &field, why))
            }
        }
    }

    /// The error of customer `id` (of the file being read) at `field`.
    fn error_at(&self, file: &File<'_>, id: u32, field: &str, why: String) -> ConfigError {
        let (name, at) = self.names[id as usize];
        let i = id as usize - self.base();
        let who = if name.is_empty() {
            format!("customer[{i}]")
        } else {
            format!("customer[{i}] ({name:?})")
        };
        file.invalid_at(at, format!("{who}.{field}"), why)
    }

    /// The earliest name or prefix given a second time, and why it is
    /// refused. Sorts the keys in place.
    fn first_duplicate(&mut self) -> Option<(Position, String)> {
        let mut first: Option<(Position, String)> = None;
        let mut found = |at: Position, why: &dyn Fn() -> String| {
            if first.as_ref().is_none_or(|(f, _)| at < *f) {
                first = Some((at, why()));
            }
        };
        self.name_keys.sort_unstable();
        for run in self
            .name_keys
            .chunk_by(|a, b| a.0 == b.0)
            .filter(|r| r.len() > 1)
        {
            // Equal hashes: compare the names (ids ascend within the run).
            for (k, &(_, id)) in run.iter().enumerate() {
                let name = self.names[id as usize].0;
                if let Some(&(_, owner)) = run[..k]
                    .iter()
                    .find(|&&(_, o)| self.names[o as usize].0 == name)
                {
                    found((id, DUPLICATE_NAME), &|| {
                        format!(
                            "{name:?} is already the name of {}; customer names must be unique",
                            self.origin(owner)
                        )
                    });
                }
            }
        }
        self.v4.sort_unstable();
        for run in self.v4.chunk_by(|a, b| a.0 == b.0).filter(|r| r.len() > 1) {
            let key = run[0].0;
            let prefix = Prefix {
                addr: IpAddr::V4(((key >> 8) as u32).into()),
                len: key as u8,
            };
            self.taken(prefix, run.iter().map(|&(_, p)| p), &mut found);
        }
        self.v6.sort_unstable();
        for run in self
            .v6
            .chunk_by(|a, b| (a.0, a.1) == (b.0, b.1))
            .filter(|r| r.len() > 1)
        {
            let prefix = Prefix {
                addr: IpAddr::V6(run[0].0.into()),
                len: run[0].1,
            };
            self.taken(prefix, run.iter().map(|&(_, _, p)| p), &mut found);
        }
        first
    }

    /// One prefix's places, ascending: the first owns it, each later one is
    /// a duplicate.
    fn taken(
        &self,
        prefix: Prefix,
        mut places: impl Iterator<Item = u64>,
        found: &mut impl FnMut(Position, &dyn Fn() -> String),
    ) {
        let Some(first) = places.next() else { return };
        let owner = (first >> 32) as u32;
        for p in places {
            let id = (p >> 32) as u32;
            let j = (p & 0xffff_ffff) as usize;
            found((id, prefix_taken(j)), &|| {
                if owner == id {
                    format!("{prefix} is listed twice for this customer; list it once")
                } else {
                    format!(
                        "{prefix} is already owned by {}; a prefix belongs to one customer only (a more specific prefix may be carved out of a larger one)",
                        self.origin(owner)
                    )
                }
            });
        }
    }

    /// Validates `customer` (of `file`) but for duplicates, and adds it as
    /// the next customer; the keys of what it was given so far are kept
    /// for the duplicate checks even when it fails.
    fn add(
        &mut self,
        file: &File<'_>,
        customer: &Entry<'t>,
    ) -> Result<(), (Position, ConfigError)> {
        let name = customer.name;
        let Ok(id) = u32::try_from(self.list.len()) else {
            let i = self.list.len() - self.base();
            let e = file.invalid_at(
                customer.name_at,
                format!("customer[{i}] ({name:?}).name"),
                "too many customers; at most 2^32 are supported",
            );
            return Err(((u32::MAX, NAME), e));
        };
        self.names.push((name, customer.name_at));
        macro_rules! err {
            ($stage:expr, $field:expr, $why:expr) => {
                ((id, $stage), self.error_at(file, id, $field, $why))
            };
        }
        if !valid_customer_name(name) {
            return Err(err!(
                NAME,
                "name",
                format!("{name:?} is not a valid name; use 1 to {MAX_NAME} of A-Z a-z 0-9 . _ - @ : + (no spaces)")
            ));
        }
        self.name_keys.push((FxBuildHasher.hash_one(name), id));
        if customer.prefixes.is_empty() {
            return Err(err!(
                NO_PREFIXES,
                "prefixes",
                "is empty; list the customer's address space, e.g. [\"198.51.100.0/24\"]"
                    .to_owned()
            ));
        }
        let mut prefixes = Vec::with_capacity(customer.prefixes.len());
        for (j, text) in customer.prefixes.iter().enumerate() {
            let prefix: Prefix = match text.parse() {
                Ok(p) => p,
                Err(e) => {
                    let e: crate::PrefixError = e;
                    let field = format!("prefixes[{j}]");
                    return Err(err!(prefix_syntax(j), &field, e.to_string()));
                }
            };
            match prefix.addr {
                IpAddr::V4(a) => self.v4.push((
                    (u64::from(u32::from(a)) << 8) | u64::from(prefix.len),
                    place(id, j),
                )),
                IpAddr::V6(a) => self.v6.push((u128::from(a), prefix.len, place(id, j))),
            }
            prefixes.push(prefix);
        }
        if let Some(plan) = customer.plan {
            if !self.plans.contains_key(plan) {
                let known: Vec<&str> = self.plans.keys().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "no plans are defined".to_owned()
                } else {
                    format!("defined plans: {}", known.join(", "))
                };
                return Err(err!(
                    PLAN,
                    "plan",
                    format!(
                        "plan {plan:?} is not defined; add [plans.{}] or fix the name ({known})",
                        bare_or_quoted(plan)
                    )
                ));
            }
        }
        let overrides = match &customer.limits {
            None => Limits::unset(self.windows.len()),
            Some(table) => match limits(self.windows, table) {
                Ok(l) => l,
                Err((k, why)) => return Err(err!(LIMITS, &format!("limits.{k}"), why)),
            },
        };
        self.list.push(Customer {
            id,
            name: name.to_owned(),
            prefixes,
            plan: customer.plan.map(str::to_owned),
            overrides,
            mode: customer.mode,
            blocked: customer.blocked.unwrap_or(false),
        });
        Ok(())
    }
}
