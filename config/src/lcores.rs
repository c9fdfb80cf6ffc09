//! The lcore options in `dpdk.eal_args`: `-l`, `-c`, `--lcores` and
//! `--main-lcore`, read the way DPDK's EAL reads them, so that the config
//! can check them against `dpdk.cores` before the EAL starts.
use std::collections::{BTreeMap, BTreeSet};

/// DPDK's `RTE_MAX_LCORE` in the distribution build (Debian 12, DPDK 22.11):
/// lcore ids are below it.
pub const MAX_LCORE: usize = 128;

/// The lcore options found in the EAL arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EalLcores {
    /// The lcores listed by `-l`, `-c` or `--lcores`, if one of them is given.
    pub list: Option<LcoreList>,
    /// `--main-lcore N`: the lcore and the index of its argument.
    pub main: Option<(usize, usize)>,
}

/// The lcores one option enables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcoreList {
    /// The enabled lcores.
    pub lcores: BTreeSet<usize>,
    /// How the operator wrote it, for messages: `-l 0-3`.
    pub given: String,
    /// The index in `eal_args` of the option.
    pub arg: usize,
    /// `--lcores`: lcores mapped to CPUs of the operator's choice (else
    /// lcore N runs on CPU N).
    pub mapped: bool,
    /// The CPUs of each lcore `--lcores` maps (`1@3`, `(1,2)@(3,4)`);
    /// absent ones run on the CPU of their own number.
    pub cpus: BTreeMap<usize, BTreeSet<usize>>,
}

impl EalLcores {
    /// The EAL main lcore: `--main-lcore` if given, else the lowest lcore
    /// of the list (DPDK's rule), else 0 (the list synwall builds starts
    /// with 0). A list is never empty.
    pub fn main_lcore(&self) -> usize {
        match (&self.main, &self.list) {
            (Some((m, _)), _) => *m,
            (None, Some(l)) => l.lcores.first().copied().unwrap_or(0),
            (None, None) => 0,
        }
    }

    /// The CPUs `lcore` runs on: its `--lcores` mapping, else CPU `lcore`.
    pub fn cpus_of(&self, lcore: usize) -> BTreeSet<usize> {
        self.list
            .as_ref()
            .and_then(|l| l.cpus.get(&lcore).cloned())
            .unwrap_or_else(|| BTreeSet::from([lcore]))
    }
}

/// Reads the lcore options of `args`. An error carries the index of the
/// argument at fault and the reason.
pub fn scan(args: &[String]) -> Result<EalLcores, (usize, String)> {
    let mut found = EalLcores::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        let at = i;
        // The option's name and its value: `-l 0-3`, `-l0-3`, `--lcores=...`,
        // `--lcores ...`.
        let option = if let Some(rest) = arg.strip_prefix("--") {
            let (name, inline) = match rest.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (rest, None),
            };
            match name {
                "lcores" | "main-lcore" => Some((format!("--{name}"), inline)),
                "master-lcore" => {
                    return Err((
                        at,
                        format!("{arg:?} is the old name of --main-lcore, which DPDK 22.11 no longer knows; write --main-lcore"),
                    ))
                }
                _ => None,
            }
        } else if arg.starts_with("-l") || arg.starts_with("-c") {
            let (name, rest) = arg.split_at(2);
            Some((name.to_owned(), (!rest.is_empty()).then_some(rest)))
        } else {
            None
        };
        let Some((name, inline)) = option else {
            i += 1;
            continue;
        };
        let value = match inline {
            Some(v) => {
                i += 1;
                v.to_owned()
            }
            None => {
                let Some(v) = args.get(i + 1) else {
                    return Err((at, format!("{name} needs a value, e.g. {}", example(&name))));
                };
                i += 2;
                v.clone()
            }
        };
        let value = value.trim();
        let bad = |why: String| (at, format!("{name} {value:?}: {why}"));
        if name == "--main-lcore" {
            if let Some((_, first)) = found.main {
                return Err((
                    at,
                    format!(
                        "--main-lcore is given twice (also dpdk.eal_args[{first}]); give it once"
                    ),
                ));
            }
            let main = lcore_id(value).map_err(bad)?;
            found.main = Some((main, at));
            continue;
        }
        if let Some(l) = &found.list {
            return Err((
                at,
                format!(
                    "{name} {value} chooses the lcores, but dpdk.eal_args[{}] ({}) already does (DPDK would ignore one); give the lcores once",
                    l.arg, l.given
                ),
            ));
        }
        let (lcores, cpus) = match name.as_str() {
            "-l" => list(value).map(|l| (l, BTreeMap::new())),
            "-c" => mask(value).map(|l| (l, BTreeMap::new())),
            _ => map(value).map(|m| (m.keys().copied().collect(), m)),
        }
        .map_err(bad)?;
        found.list = Some(LcoreList {
            lcores,
            given: format!("{name} {value}"),
            arg: at,
            mapped: name == "--lcores",
            cpus,
        });
    }
    Ok(found)
}

fn example(name: &str) -> &'static str {
    match name {
        "-l" => "-l 0-3",
        "-c" => "-c 0xf",
        "--lcores" => "--lcores=0@0,1@1",
        _ => "--main-lcore 0",
    }
}

/// One lcore id.
fn lcore_id(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let n: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not an lcore id"))?;
    if n >= MAX_LCORE {
        return Err(format!(
            "lcore {n} is out of range; DPDK's lcores are 0 to {}",
            MAX_LCORE - 1
        ));
    }
    Ok(n)
}

/// A core list as `-l` takes it: `0,2-4` (ids and ranges, comma-separated).
pub fn list(text: &str) -> Result<BTreeSet<usize>, String> {
    let mut set = BTreeSet::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err("an empty entry; write ids and ranges like 0,2-4".into());
        }
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (lcore_id(a)?, lcore_id(b)?);
                if a > b {
                    return Err(format!("the range {part} runs backwards; write {b}-{a}"));
                }
                set.extend(a..=b);
            }
            None => {
                set.insert(lcore_id(part)?);
            }
        }
    }
    Ok(set)
}

/// A core mask as `-c` takes it: hexadecimal, `0x` optional (`0xf`, `f`).
pub fn mask(text: &str) -> Result<BTreeSet<usize>, String> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if digits.is_empty() {
        return Err("no digits; write a hexadecimal mask like 0xf".into());
    }
    let mut set = BTreeSet::new();
    // The last digit holds lcores 0-3, the one before 4-7, ...
    for (pos, c) in digits.chars().rev().enumerate() {
        let d = c
            .to_digit(16)
            .ok_or_else(|| format!("{c:?} is not a hexadecimal digit"))?;
        for bit in 0..4 {
            if d & (1 << bit) != 0 {
                let id = pos * 4 + bit;
                if id >= MAX_LCORE {
                    return Err(format!(
                        "sets lcore {id}; DPDK's lcores are 0 to {}",
                        MAX_LCORE - 1
                    ));
                }
                set.insert(id);
            }
        }
    }
    if set.is_empty() {
        return Err("enables no lcore".into());
    }
    Ok(set)
}

/// The lcores of an `--lcores` map: `0@0,1@1,(2,3)@1,4-5`: each element
/// is an lcore, a range or a parenthesized group, optionally `@` the CPUs
/// it runs on.
pub fn map(text: &str) -> Result<BTreeMap<usize, BTreeSet<usize>>, String> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        // The lcore set: a group up to its ')', or up to '@' or ','.
        let (lcores, after) = if let Some(inner) = rest.strip_prefix('(') {
            let close = inner
                .find(')')
                .ok_or_else(|| "a '(' without its ')'".to_owned())?;
            (&inner[..close], &inner[close + 1..])
        } else {
            let end = rest.find(['@', ',']).unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        let lcores = list(lcores)?;
        // The CPU set, which may be a group with commas of its own; without
        // one, each lcore runs on the CPU of its number.
        let (cpus, after) = match after.strip_prefix('@') {
            Some(cpus) => {
                let (group, end) = if let Some(inner) = cpus.strip_prefix('(') {
                    let close = inner.find(')').ok_or("a '(' without its ')'")?;
                    (&inner[..close], close + 2)
                } else {
                    let end = cpus.find(',').unwrap_or(cpus.len());
                    (&cpus[..end], end)
                };
                (Some(list(group)?), &cpus[end..])
            }
            None => (None, after),
        };
        for &l in &lcores {
            out.insert(l, cpus.clone().unwrap_or_else(|| BTreeSet::from([l])));
        }
        rest = match after.strip_prefix(',') {
            Some(r) if r.trim().is_empty() => return Err("ends with ','".into()),
            Some(r) => r.trim_start(),
            None if after.is_empty() => "",
            None => return Err(format!("unexpected {after:?}")),
        };
    }
    if out.is_empty() {
        return Err("enables no lcore".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[usize]) -> BTreeSet<usize> {
        ids.iter().copied().collect()
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lists_masks_and_maps() {
        assert_eq!(list("0-3").unwrap(), set(&[0, 1, 2, 3]));
        assert_eq!(list("0,2-4").unwrap(), set(&[0, 2, 3, 4]));
        assert_eq!(list("5").unwrap(), set(&[5]));
        assert!(list("3-1").unwrap_err().contains("backwards"));
        assert!(list("0,,1").is_err());
        assert!(list("x").is_err());
        assert!(list("0-200").unwrap_err().contains("out of range"));
        assert_eq!(mask("0xf").unwrap(), set(&[0, 1, 2, 3]));
        assert_eq!(mask("A").unwrap(), set(&[1, 3]));
        assert_eq!(mask("0x11").unwrap(), set(&[0, 4]));
        assert!(mask("0x0").is_err());
        assert!(mask("0xg").is_err());
        let keys = |m: BTreeMap<usize, BTreeSet<usize>>| m.into_keys().collect::<BTreeSet<_>>();
        assert_eq!(keys(map("0@0,1@1,2@1").unwrap()), set(&[0, 1, 2]));
        let m = map("(0-2)@0,(3,4)@(1,2),5-6").unwrap();
        assert_eq!(keys(m.clone()), set(&[0, 1, 2, 3, 4, 5, 6]));
        assert_eq!(m[&1], set(&[0]));
        assert_eq!(m[&4], set(&[1, 2]));
        assert_eq!(m[&6], set(&[6]));
        assert_eq!(keys(map("0,1").unwrap()), set(&[0, 1]));
        let l = scan(&args(&["--lcores=0@1,1@0"])).unwrap();
        assert_eq!(l.cpus_of(0), set(&[1]));
        assert_eq!(l.cpus_of(7), set(&[7]));
        assert!(map("(0,1@0").is_err());
        assert!(map("0@0,").is_err());
    }

    #[test]
    fn scan_reads_both_spellings_and_skips_values() {
        let l = scan(&args(&["--no-pci", "-l", "0-3"])).unwrap();
        assert_eq!(l.list.as_ref().unwrap().lcores, set(&[0, 1, 2, 3]));
        assert_eq!(l.list.as_ref().unwrap().given, "-l 0-3");
        assert_eq!(l.main_lcore(), 0);
        let l = scan(&args(&["-l1-3", "--main-lcore=2"])).unwrap();
        assert_eq!(l.list.as_ref().unwrap().arg, 0);
        assert_eq!(l.main_lcore(), 2);
        assert_eq!(scan(&args(&["-c", "0xe"])).unwrap().main_lcore(), 1);
        assert_eq!(scan(&args(&["--main-lcore", "3"])).unwrap().main_lcore(), 3);
        assert!(
            scan(&args(&["--lcores=0@0,1@0"]))
                .unwrap()
                .list
                .unwrap()
                .mapped
        );
        assert_eq!(
            scan(&args(&["--log-level=8", "-m", "512"])).unwrap(),
            EalLcores::default()
        );
        assert_eq!(scan(&args(&["-l"])).unwrap_err().0, 0);
        let (i, why) = scan(&args(&["-l", "0-1", "-c", "3"])).unwrap_err();
        assert_eq!(i, 2);
        assert!(why.contains("give the lcores once"), "{why}");
        assert!(scan(&args(&["--master-lcore=0"]))
            .unwrap_err()
            .1
            .contains("--main-lcore"));
    }
}
